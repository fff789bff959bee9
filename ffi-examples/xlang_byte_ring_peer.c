/*
 * The C half of a cross-language test (tests/c_examples.rs): C and Rust on
 * the same named SPSC byte rings.
 *
 *   xlang_byte_ring_peer IN_NAME OUT_NAME
 *
 * Opens the byte ring IN_NAME that the Rust side created (an SpscByteRing)
 * and claims its consumer end; creates the byte ring OUT_NAME, with the same
 * maximum message size, and claims its producer end. Every message it
 * receives it sends back reversed, until IN reports end-of-file; then it
 * closes OUT's producer end. It receives into a 16-byte buffer first and
 * only on SHMPRIM_BUFFER_TOO_SMALL into one of the size reported.
 * Prints "xlang_byte_ring_peer: N messages answered, M needed a larger buffer".
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "shmprim.h"

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "xlang_byte_ring_peer: %s: %s (%s)\n", what, shmprim_status_str(st),
            shmprim_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    const int64_t ten_s = 10000000000LL;
    shmprim_byte_ring *in = NULL, *out = NULL;
    shmprim_status st = shmprim_byte_ring_open(argv[1], &in);
    if (st != SHMPRIM_OK) return fail("open in", st);
    size_t max = shmprim_byte_ring_max_message(in);
    shmprim_byte_ring_consumer *rx = NULL;
    st = shmprim_byte_ring_claim_consumer(in, &rx);
    if (st != SHMPRIM_OK) return fail("claim consumer", st);
    st = shmprim_byte_ring_create(argv[2], 1024, max, NULL, &out);
    if (st != SHMPRIM_OK) return fail("create out", st);
    shmprim_byte_ring_producer *tx = NULL;
    st = shmprim_byte_ring_claim_producer(out, &tx);
    if (st != SHMPRIM_OK) return fail("claim producer", st);

    unsigned char small[16];
    unsigned char *big = malloc(max ? max : 1), *back = malloc(max ? max : 1);
    if (!big || !back) return fail("malloc", SHMPRIM_IO);
    uint64_t n = 0, larger = 0;
    for (;;) {
        size_t len = 0;
        unsigned char *msg = small;
        st = shmprim_byte_ring_recv(rx, small, sizeof small, &len, ten_s);
        if (st == SHMPRIM_BUFFER_TOO_SMALL) {
            if (len > max) return fail("reported length", SHMPRIM_CORRUPTED);
            larger++;
            msg = big;
            st = shmprim_byte_ring_recv(rx, big, max, &len, 0);
        }
        if (st == SHMPRIM_CLOSED) break;
        if (st != SHMPRIM_OK) return fail("recv", st);
        for (size_t i = 0; i < len; i++) back[i] = msg[len - 1 - i];
        st = shmprim_byte_ring_send(tx, back, len, ten_s);
        if (st != SHMPRIM_OK) return fail("send", st);
        n++;
    }
    free(big);
    free(back);
    shmprim_byte_ring_producer_close(tx);
    shmprim_byte_ring_consumer_close(rx);
    shmprim_byte_ring_close(in);
    shmprim_byte_ring_close(out);
    printf("xlang_byte_ring_peer: %" PRIu64 " messages answered, %" PRIu64
           " needed a larger buffer\n", n, larger);
    return 0;
}
