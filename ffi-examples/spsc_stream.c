/*
 * A stream of ticks through a named SPSC ring: a forked child produces
 * 100000 fixed-size records (batches of up to 64 with shmprim_spsc_push_many,
 * then single pushes that wait for room), the parent consumes them (batches
 * with shmprim_spsc_pop_many while the stream flows, single pops that wait),
 * checks that every record arrives once and in order, and reads end-of-stream
 * (SHMPRIM_CLOSED) once the child closed its end.  While the child holds the
 * producer end, the parent cannot claim it.
 * Prints "spsc_stream: 100000 ticks in order, sum S ok".
 */
#include <inttypes.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

#define TICKS 100000
#define BATCH 64

struct tick {
    uint64_t seq;   /* 0 .. TICKS-1, in order */
    uint32_t price; /* derived from seq, checked on arrival */
    uint32_t size;
};

static struct tick make_tick(uint64_t seq) {
    struct tick t = {seq, (uint32_t)(seq * 7 + 1), (uint32_t)(seq % 100)};
    return t;
}

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "spsc_stream: %s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

static int produce(const char *name) {
    shmprim_spsc *ring = NULL;
    shmprim_status st = shmprim_spsc_open(name, &ring);
    if (st != SHMPRIM_OK) return fail("child open", st);
    if (shmprim_spsc_elem_size(ring) != sizeof(struct tick)) return fail("element size", SHMPRIM_INCOMPATIBLE);
    shmprim_spsc_producer *tx = NULL;
    st = shmprim_spsc_claim_producer(ring, &tx);
    if (st != SHMPRIM_OK) return fail("claim producer", st);
    uint64_t seq = 0;
    /* First half in batches: push what fits, wait for room when none does. */
    while (seq < TICKS / 2) {
        struct tick batch[BATCH];
        size_t n = 0;
        while (n < BATCH && seq + n < TICKS / 2) {
            batch[n] = make_tick(seq + n);
            n++;
        }
        size_t pushed = 0;
        st = shmprim_spsc_push_many(tx, batch, n, &pushed);
        if (st != SHMPRIM_OK) return fail("push_many", st);
        if (pushed == 0) {
            /* Full: wait for room for one (this also notices a consumer that died). */
            st = shmprim_spsc_push(tx, &batch[0], sizeof batch[0], 10000000000LL);
            if (st != SHMPRIM_OK) return fail("push after full", st);
            pushed = 1;
        }
        seq += pushed;
    }
    /* Second half one at a time, waiting for room (at most 10 s each). */
    for (; seq < TICKS; seq++) {
        struct tick t = make_tick(seq);
        st = shmprim_spsc_push(tx, &t, sizeof t, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("push", st);
    }
    shmprim_spsc_producer_close(tx); /* the consumer reads end-of-stream */
    shmprim_spsc_close(ring);
    return 0;
}

/* Takes every tick, checking order and contents, until end-of-stream. */
static int consume(shmprim_spsc *ring, shmprim_spsc_consumer *rx, uint64_t *sum) {
    uint64_t next = 0;
    int claim_checked = 0;
    struct tick batch[BATCH];
    for (;;) {
        size_t got = 0;
        shmprim_status st = shmprim_spsc_pop_many(rx, batch, BATCH, &got);
        if (st == SHMPRIM_EMPTY) {
            /* Nothing queued: wait for one tick (or end-of-stream). */
            st = shmprim_spsc_pop(rx, &batch[0], sizeof batch[0], NULL, 10000000000LL);
            got = st == SHMPRIM_OK ? 1 : 0;
        }
        if (st == SHMPRIM_CLOSED) break;
        if (st != SHMPRIM_OK) return fail("pop", st);
        for (size_t i = 0; i < got; i++) {
            struct tick want = make_tick(next);
            if (batch[i].seq != want.seq || batch[i].price != want.price || batch[i].size != want.size) {
                fprintf(stderr, "spsc_stream: tick %" PRIu64 " arrived as %" PRIu64 "\n", next, batch[i].seq);
                return 1;
            }
            *sum += batch[i].seq;
            next++;
        }
        if (!claim_checked && next < TICKS) {
            /* The child is producing: its end cannot be taken. */
            shmprim_spsc_producer *thief = NULL;
            st = shmprim_spsc_claim_producer(ring, &thief);
            if (st != SHMPRIM_INVALID_ARGUMENT) return fail("second producer claim", st);
            claim_checked = 1;
        }
    }
    if (next != TICKS || !claim_checked) return fail("count", SHMPRIM_CORRUPTED);
    return 0;
}

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "shmprim-example-spsc-%d", (int)getpid());
    shmprim_spsc *ring = NULL;
    /* 256 slots: the stream wraps the ring hundreds of times. */
    shmprim_status st = shmprim_spsc_create(name, 256, sizeof(struct tick), _Alignof(struct tick), NULL, &ring);
    if (st != SHMPRIM_OK) return fail("create", st);
    shmprim_spsc_consumer *rx = NULL;
    st = shmprim_spsc_claim_consumer(ring, &rx);
    if (st != SHMPRIM_OK) return fail("claim consumer", st);

    /* The child opens the ring by name and holds the producer end until it is done. */
    pid_t pid = fork();
    if (pid < 0) return fail("fork", SHMPRIM_IO);
    if (pid == 0) _exit(produce(name));

    uint64_t sum = 0;
    int rc = consume(ring, rx, &sum);
    if (rc != 0) kill(pid, SIGKILL); /* never leave the child waiting */
    int status = 0;
    waitpid(pid, &status, 0);
    if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) rc = fail("child", SHMPRIM_IO);
    shmprim_spsc_consumer_close(rx);
    shmprim_spsc_close(ring);
    st = shmprim_spsc_unlink(name);
    if (rc == 0 && st != SHMPRIM_OK) rc = fail("unlink", st);
    if (rc == 0) printf("spsc_stream: %d ticks in order, sum %" PRIu64 " ok\n", TICKS, sum);
    return rc;
}
