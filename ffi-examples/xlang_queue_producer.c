/*
 * The C half of a cross-language test (tests/c_examples.rs): a C producer and
 * a Rust consumer on one named Queue.
 *
 *   xlang_queue_producer QUEUE_NAME BYTE_QUEUE_NAME COUNT
 *
 * Opens the element queue the Rust side created (a Queue<u64>) and puts
 * 1 .. COUNT; creates a byte queue (which the Rust side opens as a ByteQueue)
 * and puts "msg-1" .. "msg-COUNT"; then shuts the byte queue.
 * Prints "xlang_queue_producer: COUNT values and COUNT messages put".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shmprim.h"

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "xlang_queue_producer: %s: %s (%s)\n", what, shmprim_status_str(st),
            shmprim_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    const char *qname = argv[1], *bname = argv[2];
    long count = atol(argv[3]);

    shmprim_queue *q = NULL;
    shmprim_status st = shmprim_queue_open(qname, &q);
    if (st != SHMPRIM_OK) return fail("queue open", st);
    if (shmprim_queue_elem_size(q) != sizeof(uint64_t)) return fail("element size", SHMPRIM_INCOMPATIBLE);
    shmprim_byte_queue *bq = NULL;
    st = shmprim_byte_queue_create(bname, 16, 32, NULL, &bq);
    if (st != SHMPRIM_OK) return fail("byte queue create", st);

    for (long i = 1; i <= count; i++) {
        uint64_t v = (uint64_t)i;
        st = shmprim_queue_put(q, &v, sizeof v, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("put", st);
        char msg[32];
        int n = snprintf(msg, sizeof msg, "msg-%ld", i);
        st = shmprim_byte_queue_put(bq, msg, (size_t)n, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("byte put", st);
    }
    shmprim_byte_queue_shutdown(bq, false);
    shmprim_queue_close(q);
    shmprim_byte_queue_close(bq);
    printf("xlang_queue_producer: %ld values and %ld messages put\n", count, count);
    return 0;
}
