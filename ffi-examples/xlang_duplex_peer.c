/*
 * The C half of a cross-language test (tests/c_examples.rs): C and Rust on
 * the same named duplex ring.
 *
 *   xlang_duplex_peer NAME
 *
 * Opens the duplex ring NAME that the Rust side created (a DuplexRing<u64>)
 * and takes its end B. Every value v it receives it answers with 3v + 1,
 * until end A is closed; it busy-polls (timeout 0) for a while before each
 * waiting receive, as a latency-bound server would.
 * Prints "xlang_duplex_peer: N values answered, M by polling".
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include "shmprim.h"

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "xlang_duplex_peer: %s: %s (%s)\n", what, shmprim_status_str(st),
            shmprim_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const int64_t ten_s = 10000000000LL;
    shmprim_duplex *ring = NULL;
    shmprim_status st = shmprim_duplex_open(argv[1], &ring);
    if (st != SHMPRIM_OK) return fail("open", st);
    if (shmprim_duplex_elem_size(ring) != sizeof(uint64_t)) return fail("element size", SHMPRIM_INCOMPATIBLE);
    shmprim_duplex_end *b = NULL;
    st = shmprim_duplex_end_b(ring, &b);
    if (st != SHMPRIM_OK) return fail("end b", st);

    uint64_t v, n = 0, polled = 0;
    for (;;) {
        st = SHMPRIM_EMPTY;
        for (int spin = 0; spin < 2000 && st == SHMPRIM_EMPTY; spin++)
            st = shmprim_duplex_recv(b, &v, sizeof v, NULL, 0);
        if (st == SHMPRIM_OK)
            polled++;
        else if (st == SHMPRIM_EMPTY)
            st = shmprim_duplex_recv(b, &v, sizeof v, NULL, ten_s);
        if (st == SHMPRIM_CLOSED) break;
        if (st != SHMPRIM_OK) return fail("recv", st);
        uint64_t answer = 3 * v + 1;
        st = shmprim_duplex_send(b, &answer, sizeof answer, 0);
        if (st == SHMPRIM_FULL) st = shmprim_duplex_send(b, &answer, sizeof answer, ten_s);
        if (st != SHMPRIM_OK) return fail("send", st);
        n++;
    }
    shmprim_duplex_end_close(b);
    shmprim_duplex_close(ring);
    printf("xlang_duplex_peer: %" PRIu64 " values answered, %" PRIu64 " by polling\n", n, polled);
    return 0;
}
