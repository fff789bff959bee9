/*
 * The C half of a cross-language test (tests/c_examples.rs): C and Rust on
 * the same named SPSC rings.
 *
 *   xlang_spsc_peer IN_NAME OUT_NAME
 *
 * Opens the ring IN_NAME that the Rust side created (an SpscRing<u64>) and
 * claims its consumer end; creates the ring OUT_NAME of 16-byte pairs (which
 * the Rust side opens as an SpscRing<[u64; 2]>) and claims its producer end.
 * For every value v it pops, it pushes {v, v * v}, until IN reports
 * end-of-stream; then it closes OUT's producer end.
 * Prints "xlang_spsc_peer: N values answered".
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include "shmprim.h"

struct pair {
    uint64_t value;
    uint64_t square;
};

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "xlang_spsc_peer: %s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    shmprim_spsc *in = NULL, *out = NULL;
    shmprim_status st = shmprim_spsc_open(argv[1], &in);
    if (st != SHMPRIM_OK) return fail("open in", st);
    if (shmprim_spsc_elem_size(in) != sizeof(uint64_t)) return fail("in element size", SHMPRIM_INCOMPATIBLE);
    shmprim_spsc_consumer *rx = NULL;
    st = shmprim_spsc_claim_consumer(in, &rx);
    if (st != SHMPRIM_OK) return fail("claim consumer", st);
    st = shmprim_spsc_create(argv[2], 8, sizeof(struct pair), _Alignof(struct pair), NULL, &out);
    if (st != SHMPRIM_OK) return fail("create out", st);
    shmprim_spsc_producer *tx = NULL;
    st = shmprim_spsc_claim_producer(out, &tx);
    if (st != SHMPRIM_OK) return fail("claim producer", st);

    uint64_t v, n = 0;
    while ((st = shmprim_spsc_pop(rx, &v, sizeof v, NULL, 10000000000LL)) == SHMPRIM_OK) {
        struct pair p = {v, v * v};
        st = shmprim_spsc_push(tx, &p, sizeof p, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("push", st);
        n++;
    }
    if (st != SHMPRIM_CLOSED) return fail("pop", st);
    shmprim_spsc_producer_close(tx);
    shmprim_spsc_consumer_close(rx);
    shmprim_spsc_close(in);
    shmprim_spsc_close(out);
    printf("xlang_spsc_peer: %" PRIu64 " values answered\n", n);
    return 0;
}
