/*
 * Bad calls from C are answered with the documented status, never a crash:
 * null handles, null buffers and out-pointers, misaligned in-place memory,
 * unknown flags and out-of-range arguments, an unknown status code, a wrong
 * object kind opened by name, and an unlock by a thread that does not hold
 * the lock.  Each check prints its line; the last line is
 * "bad_calls: N checks ok".
 */
#include <fcntl.h>
#include <semaphore.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shmprim.h"

static int checks, failures;

static void expect(const char *what, shmprim_status got, shmprim_status want) {
    checks++;
    if (got != want) {
        failures++;
        printf("FAIL %s: got %d (%s), want %d (%s)\n", what, (int)got, shmprim_status_str(got), (int)want,
               shmprim_status_str(want));
    } else {
        printf("ok   %s -> %s\n", what, shmprim_status_str(got));
    }
}

#define EXPECT(call, want) expect(#call, (call), (want))

static void expect_true(const char *what, int cond) {
    checks++;
    if (!cond) failures++;
    printf("%s %s\n", cond ? "ok  " : "FAIL", what);
}

/* A barrier action for the check below: counts its calls. */
static void count_call(void *ctx) { *(int *)ctx += 1; }

int main(void) {
    char mname[64], ename[64];
    snprintf(mname, sizeof mname, "shmprim-example-bad-mutex-%d", (int)getpid());
    snprintf(ename, sizeof ename, "shmprim-example-bad-event-%d", (int)getpid());

    /* Null handles. */
    EXPECT(shmprim_mutex_lock(NULL, 0), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_mutex_unlock(NULL), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_rmutex_lock(NULL, -1), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_semaphore_acquire(NULL, -1), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_semaphore_release(NULL, 1), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_event_set(NULL), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_event_wait(NULL, -1), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_condvar_notify_all(NULL), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_condvar_wait(NULL, NULL, -1), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_barrier_wait(NULL, -1, NULL), SHMPRIM_NULL_POINTER);
    expect_true("shmprim_mutex_data(NULL) is NULL", shmprim_mutex_data(NULL) == NULL);
    expect_true("shmprim_mutex_data_size(NULL) is 0", shmprim_mutex_data_size(NULL) == 0);
    shmprim_mutex_close(NULL); /* ignored */
    shmprim_event_close(NULL);

    /* Null names and out-pointers; nothing is created. */
    shmprim_mutex *m = NULL;
    EXPECT(shmprim_mutex_create(NULL, 8, 8, NULL, &m), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_mutex_create(mname, 8, 8, NULL, NULL), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_mutex_open(mname, &m), SHMPRIM_NOT_FOUND);
    EXPECT(shmprim_mutex_open("bad/name", &m), SHMPRIM_INVALID_NAME);

    /* Bad sizes, alignments, flags and values. */
    EXPECT(shmprim_mutex_create(mname, 8, 3, NULL, &m), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_mutex_create(mname, 8, 0, NULL, &m), SHMPRIM_INVALID_ARGUMENT);
    shmprim_options bad_flags = {.mode = 0, .flags = 0x80};
    EXPECT(shmprim_mutex_create(mname, 8, 8, &bad_flags, &m), SHMPRIM_INVALID_ARGUMENT);
    shmprim_options bad_mode = {.mode = 01000, .flags = 0};
    EXPECT(shmprim_event_create(ename, &bad_mode, NULL), SHMPRIM_NULL_POINTER);
    shmprim_event *e = NULL;
    EXPECT(shmprim_event_create(ename, &bad_mode, &e), SHMPRIM_INVALID_ARGUMENT);
    shmprim_options pi_on_event = {.mode = 0, .flags = SHMPRIM_PRIORITY_INHERITANCE};
    EXPECT(shmprim_event_create(ename, &pi_on_event, &e), SHMPRIM_INVALID_ARGUMENT);
    shmprim_semaphore *sem = NULL;
    EXPECT(shmprim_semaphore_anonymous(3, 2, &sem), SHMPRIM_INVALID_ARGUMENT);
    shmprim_barrier *b = NULL;
    EXPECT(shmprim_barrier_anonymous(0, &b), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_barrier_anonymous(SHMPRIM_BARRIER_MAX_PARTIES + 1, &b), SHMPRIM_INVALID_ARGUMENT);

    /* In-place forms: null and misaligned memory, unknown flags. */
    alignas(8) unsigned char mem[SHMPRIM_MUTEX_SIZE + 8];
    EXPECT(shmprim_mutex_init(NULL, 0), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_mutex_init(mem + 1, 0), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_mutex_init(mem, 0x40), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_event_init(mem + 2), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_semaphore_init(mem, 5, 4), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_barrier_init(mem, 0), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_mutex_lock_at(NULL, 0), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_mutex_init(mem, 0), SHMPRIM_OK);
    EXPECT(shmprim_mutex_unlock_at(mem), SHMPRIM_NOT_OWNER);
    EXPECT(shmprim_mutex_lock_at(mem, 0), SHMPRIM_OK);
    EXPECT(shmprim_mutex_lock_at(mem, 0), SHMPRIM_INVALID_ARGUMENT); /* not reentrant */
    EXPECT(shmprim_mutex_unlock_at(mem), SHMPRIM_OK);
    EXPECT(shmprim_rmutex_init(mem, 0), SHMPRIM_OK);
    EXPECT(shmprim_rmutex_unlock_at(mem), SHMPRIM_NOT_OWNER);

    /* Out-pointers for results. */
    EXPECT(shmprim_semaphore_anonymous(1, SHMPRIM_SEMAPHORE_UNBOUNDED, &sem), SHMPRIM_OK);
    EXPECT(shmprim_semaphore_value(sem, NULL), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_semaphore_release(sem, 0), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_semaphore_try_acquire(sem), SHMPRIM_OK);
    EXPECT(shmprim_semaphore_try_acquire(sem), SHMPRIM_TIMEOUT);
    shmprim_semaphore_close(sem);

    /* Unknown status codes have a message too; never NULL. */
    expect_true("shmprim_status_str(9999) is \"unknown status\"", strcmp(shmprim_status_str(9999), "unknown status") == 0);
    expect_true("shmprim_status_str(-1) is \"unknown status\"", strcmp(shmprim_status_str(-1), "unknown status") == 0);
    expect_true("shmprim_status_str(SHMPRIM_OWNER_DIED) names it",
                strstr(shmprim_status_str(SHMPRIM_OWNER_DIED), "died") != NULL);

    /* A wrong object kind opened by name. */
    EXPECT(shmprim_event_create(ename, NULL, &e), SHMPRIM_OK);
    EXPECT(shmprim_mutex_open(ename, &m), SHMPRIM_INCOMPATIBLE);
    expect_true("the message names the kinds", strstr(shmprim_last_error_message(), "event") != NULL);
    shmprim_semaphore *wrong = NULL;
    EXPECT(shmprim_semaphore_open(ename, &wrong), SHMPRIM_INCOMPATIBLE);
    shmprim_rmutex *rm = NULL;
    EXPECT(shmprim_rmutex_open(ename, &rm), SHMPRIM_INCOMPATIBLE);
    shmprim_segment *seg = NULL;
    EXPECT(shmprim_segment_open(ename, &seg), SHMPRIM_INCOMPATIBLE);
    shmprim_event *e2 = NULL;
    EXPECT(shmprim_event_create(ename, NULL, &e2), SHMPRIM_ALREADY_EXISTS);
    expect_true("a failed create leaves *out alone", e2 == NULL);
    shmprim_event_close(e);
    EXPECT(shmprim_event_unlink(ename), SHMPRIM_OK);
    EXPECT(shmprim_event_unlink(ename), SHMPRIM_NOT_FOUND);

    /* A mutex opened with the payload it was created with; condvar misuse. */
    EXPECT(shmprim_mutex_create(mname, 8, 8, NULL, &m), SHMPRIM_OK);
    shmprim_mutex *m2 = NULL;
    EXPECT(shmprim_mutex_open_or_create(mname, 4, 4, &m2, NULL), SHMPRIM_INCOMPATIBLE);
    EXPECT(shmprim_mutex_unlock(m), SHMPRIM_NOT_OWNER);
    shmprim_condvar *cv = NULL;
    EXPECT(shmprim_condvar_anonymous(&cv), SHMPRIM_OK);
    EXPECT(shmprim_condvar_wait(cv, m, 0), SHMPRIM_NOT_OWNER); /* must hold the mutex */
    EXPECT(shmprim_mutex_lock(m, 0), SHMPRIM_OK);
    EXPECT(shmprim_condvar_wait(cv, m, 1000000), SHMPRIM_TIMEOUT); /* and holds it again */
    EXPECT(shmprim_mutex_unlock(m), SHMPRIM_OK);
    shmprim_condvar_close(cv);
    shmprim_mutex_close(m);
    EXPECT(shmprim_mutex_unlink(mname), SHMPRIM_OK);

    /* Values and arrays: type codes, sizes, ranges, locks. */
    char vname[64];
    snprintf(vname, sizeof vname, "shmprim-example-bad-value-%d", (int)getpid());
    shmprim_value *v = NULL;
    EXPECT(shmprim_value_create(vname, 99, NULL, NULL, &v), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_value_create(vname, SHMPRIM_TYPE_ANY, NULL, NULL, &v), SHMPRIM_INVALID_ARGUMENT);
    shmprim_options no_lock = {.mode = 0, .flags = SHMPRIM_NO_LOCK};
    EXPECT(shmprim_mutex_create(mname, 8, 8, &no_lock, &m), SHMPRIM_INVALID_ARGUMENT);
    int32_t seven = 7;
    EXPECT(shmprim_value_create(vname, SHMPRIM_TYPE_I32, &seven, NULL, &v), SHMPRIM_OK);
    int64_t wide = 0;
    EXPECT(shmprim_value_get(v, &wide, sizeof wide), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_value_get(v, NULL, sizeof(int32_t)), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_value_update(v, NULL, NULL, NULL), SHMPRIM_NULL_POINTER);
    shmprim_value *v2 = NULL;
    EXPECT(shmprim_value_open(vname, SHMPRIM_TYPE_F32, &v2), SHMPRIM_INCOMPATIBLE);
    shmprim_array *arr = NULL;
    EXPECT(shmprim_array_open(vname, SHMPRIM_TYPE_ANY, &arr), SHMPRIM_INCOMPATIBLE);
    shmprim_value_close(v);
    EXPECT(shmprim_value_unlink(vname), SHMPRIM_OK);
    EXPECT(shmprim_array_anonymous(SHMPRIM_TYPE_BOOL, 4, &no_lock, &arr), SHMPRIM_OK);
    bool flags[5] = {0};
    EXPECT(shmprim_array_read(arr, 2, flags, 3), SHMPRIM_INDEX_OUT_OF_RANGE);
    EXPECT(shmprim_array_read(arr, 0, NULL, 4), SHMPRIM_NULL_POINTER);
    /* A count far past the array is refused before any buffer is made. */
    EXPECT(shmprim_array_read(arr, 1, flags, (size_t)1 << 40), SHMPRIM_INDEX_OUT_OF_RANGE);
    EXPECT(shmprim_array_write(arr, 1, flags, (size_t)1 << 40), SHMPRIM_INDEX_OUT_OF_RANGE);
    EXPECT(shmprim_array_read(arr, 1, flags, SIZE_MAX), SHMPRIM_INDEX_OUT_OF_RANGE);
    EXPECT(shmprim_array_write(arr, 1, flags, SIZE_MAX), SHMPRIM_INDEX_OUT_OF_RANGE);
    EXPECT(shmprim_array_fetch_add(arr, 0, &flags[0], NULL, 1), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_array_with_lock(arr, 0, NULL, NULL), SHMPRIM_NULL_POINTER);
    shmprim_array_close(arr);

    /* Pipes: a buffer too small for the message reports the size needed. */
    shmprim_pipe *pipe = NULL;
    shmprim_pipe_end *pa = NULL, *pb = NULL, *again_a = NULL;
    EXPECT(shmprim_pipe_anonymous(1024, 64, 2, &pipe), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_pipe_anonymous(1024, 64, 1, &pipe), SHMPRIM_OK);
    EXPECT(shmprim_pipe_end_a(NULL, &pa), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_pipe_end_a(pipe, &pa), SHMPRIM_OK);
    EXPECT(shmprim_pipe_end_a(pipe, &again_a), SHMPRIM_INVALID_ARGUMENT); /* held by a live process */
    EXPECT(shmprim_pipe_end_b(pipe, &pb), SHMPRIM_OK);
    EXPECT(shmprim_pipe_send(NULL, "x", 1, 0), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_pipe_send(pa, NULL, 10, 0), SHMPRIM_NULL_POINTER);
    char big[65] = {0};
    EXPECT(shmprim_pipe_send(pa, big, sizeof big, 0), SHMPRIM_INVALID_ARGUMENT); /* over max_message */
    EXPECT(shmprim_pipe_send(pa, "0123456789", 10, 0), SHMPRIM_OK);
    char small[4];
    size_t need = 0;
    EXPECT(shmprim_pipe_recv(pb, small, sizeof small, NULL, 0), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_pipe_recv(pb, NULL, 16, &need, 0), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_pipe_recv(pb, small, sizeof small, &need, 0), SHMPRIM_BUFFER_TOO_SMALL);
    expect_true("BUFFER_TOO_SMALL reports the 10 bytes needed", need == 10);
    char enough[16];
    size_t got = 0;
    EXPECT(shmprim_pipe_recv(pb, enough, sizeof enough, &got, 0), SHMPRIM_OK);
    expect_true("the message stayed queued and arrives whole", got == 10 && memcmp(enough, "0123456789", 10) == 0);
    EXPECT(shmprim_pipe_recv(pb, enough, sizeof enough, &got, 0), SHMPRIM_EMPTY);
    EXPECT(shmprim_pipe_recv(pb, enough, sizeof enough, &got, 1000000), SHMPRIM_TIMEOUT);
    EXPECT(shmprim_pipe_next_len(pb, &got), SHMPRIM_EMPTY);
    shmprim_pipe_end_close(pa);
    EXPECT(shmprim_pipe_recv(pb, enough, sizeof enough, &got, 0), SHMPRIM_CLOSED);
    EXPECT(shmprim_pipe_send(pb, "x", 1, 0), SHMPRIM_CLOSED);
    shmprim_pipe_end_close(pb);
    shmprim_pipe_close(pipe);

    /* Queues: too-small buffers report the size needed and take nothing. */
    char qname[64];
    snprintf(qname, sizeof qname, "shmprim-example-bad-queue-%d", (int)getpid());
    shmprim_byte_queue *bq = NULL;
    EXPECT(shmprim_byte_queue_create(qname, 4, 32, NULL, &bq), SHMPRIM_OK);
    shmprim_queue *eq = NULL;
    EXPECT(shmprim_queue_open(qname, &eq), SHMPRIM_INCOMPATIBLE); /* a byte queue, not an element queue */
    EXPECT(shmprim_byte_queue_put(bq, NULL, 3, 0), SHMPRIM_NULL_POINTER);
    char too_long[33] = {0};
    EXPECT(shmprim_byte_queue_put(bq, too_long, sizeof too_long, 0), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_byte_queue_put(bq, "twenty bytes of text", 20, 0), SHMPRIM_OK);
    char eight[8];
    size_t qneed = 0;
    EXPECT(shmprim_byte_queue_get(bq, eight, sizeof eight, &qneed, 0), SHMPRIM_BUFFER_TOO_SMALL);
    expect_true("byte queue BUFFER_TOO_SMALL reports the 20 bytes needed", qneed == 20);
    char roomy[32];
    size_t qgot = 0;
    EXPECT(shmprim_byte_queue_get(bq, roomy, sizeof roomy, &qgot, 0), SHMPRIM_OK);
    expect_true("the message stayed in the queue and arrives whole",
                qgot == 20 && memcmp(roomy, "twenty bytes of text", 20) == 0);
    EXPECT(shmprim_byte_queue_get(bq, roomy, sizeof roomy, &qgot, 0), SHMPRIM_EMPTY);
    EXPECT(shmprim_byte_queue_get(bq, roomy, sizeof roomy, &qgot, 1000000), SHMPRIM_TIMEOUT);
    EXPECT(shmprim_byte_queue_shutdown(bq, false), SHMPRIM_OK);
    EXPECT(shmprim_byte_queue_put(bq, "x", 1, 0), SHMPRIM_CLOSED);
    EXPECT(shmprim_byte_queue_get(bq, roomy, sizeof roomy, &qgot, -1), SHMPRIM_CLOSED);
    shmprim_byte_queue_close(bq);
    EXPECT(shmprim_byte_queue_unlink(qname), SHMPRIM_OK);
    EXPECT(shmprim_queue_anonymous(2, sizeof(uint64_t), 3, &eq), SHMPRIM_INVALID_ARGUMENT); /* alignment */
    EXPECT(shmprim_queue_anonymous(2, sizeof(uint64_t), _Alignof(uint64_t), &eq), SHMPRIM_OK);
    uint64_t item = 42;
    uint32_t narrow = 0;
    EXPECT(shmprim_queue_put(eq, &narrow, sizeof narrow, 0), SHMPRIM_INVALID_ARGUMENT); /* wrong size */
    EXPECT(shmprim_queue_put(eq, &item, sizeof item, 0), SHMPRIM_OK);
    EXPECT(shmprim_queue_put(eq, &item, sizeof item, 0), SHMPRIM_OK);
    EXPECT(shmprim_queue_put(eq, &item, sizeof item, 0), SHMPRIM_FULL);
    EXPECT(shmprim_queue_put(eq, &item, sizeof item, 1000000), SHMPRIM_TIMEOUT);
    size_t eneed = 0;
    EXPECT(shmprim_queue_get(eq, &narrow, sizeof narrow, &eneed, 0), SHMPRIM_BUFFER_TOO_SMALL);
    expect_true("element queue BUFFER_TOO_SMALL reports the 8 bytes needed", eneed == 8);
    size_t queued = 0;
    EXPECT(shmprim_queue_len(eq, &queued, NULL), SHMPRIM_OK);
    expect_true("nothing was taken", queued == 2);
    shmprim_queue_close(eq);

    /* SPSC rings: bad geometry, one holder per end, sizes, empty/full, end-of-stream. */
    char sname[64];
    snprintf(sname, sizeof sname, "shmprim-example-bad-spsc-%d", (int)getpid());
    shmprim_spsc *ring = NULL;
    EXPECT(shmprim_spsc_anonymous(4, 0, 1, &ring), SHMPRIM_INVALID_ARGUMENT);                 /* size 0 */
    EXPECT(shmprim_spsc_anonymous(4, sizeof(uint64_t), 3, &ring), SHMPRIM_INVALID_ARGUMENT);  /* alignment */
    EXPECT(shmprim_spsc_anonymous(4, 12, 8, &ring), SHMPRIM_INVALID_ARGUMENT);                /* 8 does not divide 12 */
    EXPECT(shmprim_spsc_anonymous(0, sizeof(uint64_t), 8, &ring), SHMPRIM_INVALID_ARGUMENT);  /* capacity 0 */
    EXPECT(shmprim_spsc_create(sname, 4, sizeof(uint64_t), 8, NULL, NULL), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_spsc_open(qname, &ring), SHMPRIM_NOT_FOUND); /* unlinked above */
    EXPECT(shmprim_spsc_create(sname, 3, sizeof(uint64_t), _Alignof(uint64_t), NULL, &ring), SHMPRIM_OK);
    expect_true("spsc capacity 3 is rounded up to 4", shmprim_spsc_capacity(ring) == 4);
    expect_true("spsc null handle has no element size", shmprim_spsc_elem_size(NULL) == 0);
    EXPECT(shmprim_queue_open(sname, &eq), SHMPRIM_INCOMPATIBLE); /* an SPSC ring, not a queue */
    shmprim_spsc_producer *stx = NULL, *stx2 = NULL;
    shmprim_spsc_consumer *srx = NULL;
    EXPECT(shmprim_spsc_claim_producer(NULL, &stx), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_spsc_claim_producer(ring, &stx), SHMPRIM_OK);
    EXPECT(shmprim_spsc_claim_producer(ring, &stx2), SHMPRIM_INVALID_ARGUMENT); /* held by a live process */
    EXPECT(shmprim_spsc_claim_consumer(ring, &srx), SHMPRIM_OK);
    EXPECT(shmprim_spsc_push(NULL, &item, sizeof item, 0), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_spsc_push(stx, NULL, sizeof item, 0), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_spsc_push(stx, &narrow, sizeof narrow, 0), SHMPRIM_INVALID_ARGUMENT); /* wrong size */
    uint64_t sitems[6] = {1, 2, 3, 4, 5, 6};
    size_t spushed = 99, spopped = 99;
    EXPECT(shmprim_spsc_push_many(stx, sitems, 6, NULL), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_spsc_push_many(stx, NULL, 6, &spushed), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_spsc_push_many(stx, sitems, SIZE_MAX, &spushed), SHMPRIM_INVALID_ARGUMENT); /* overflows */
    EXPECT(shmprim_spsc_push_many(stx, sitems, 6, &spushed), SHMPRIM_OK);
    expect_true("push_many pushes only the 4 that fit", spushed == 4);
    EXPECT(shmprim_spsc_push(stx, &item, sizeof item, 0), SHMPRIM_FULL);
    expect_true("FULL leaves the message \"full\"", strcmp(shmprim_last_error_message(), "full") == 0);
    EXPECT(shmprim_spsc_push(stx, &item, sizeof item, 1000000), SHMPRIM_TIMEOUT);
    expect_true("TIMEOUT leaves the message \"timed out\"", strcmp(shmprim_last_error_message(), "timed out") == 0);
    EXPECT(shmprim_spsc_push_many(stx, sitems, 1, &spushed), SHMPRIM_OK);
    expect_true("push_many on a full ring pushes none", spushed == 0);
    size_t sneed = 0;
    EXPECT(shmprim_spsc_pop(srx, &narrow, sizeof narrow, &sneed, 0), SHMPRIM_BUFFER_TOO_SMALL);
    expect_true("spsc BUFFER_TOO_SMALL reports the 8 bytes needed", sneed == 8);
    uint64_t sout[8] = {0};
    EXPECT(shmprim_spsc_pop(srx, sout, sizeof sout[0], NULL, 0), SHMPRIM_OK);
    expect_true("the first element comes out first, nothing was taken before", sout[0] == 1);
    EXPECT(shmprim_spsc_pop_many(srx, sout, 8, NULL), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_spsc_pop_many(srx, NULL, 8, &spopped), SHMPRIM_NULL_POINTER);
    EXPECT(shmprim_spsc_pop_many(srx, sout, 8, &spopped), SHMPRIM_OK);
    expect_true("pop_many takes the 3 left, in order",
                spopped == 3 && sout[0] == 2 && sout[1] == 3 && sout[2] == 4);
    EXPECT(shmprim_spsc_pop_many(srx, sout, 8, &spopped), SHMPRIM_EMPTY);
    expect_true("pop_many on an empty ring reports 0", spopped == 0);
    expect_true("EMPTY leaves the message \"empty\"", strcmp(shmprim_last_error_message(), "empty") == 0);
    EXPECT(shmprim_spsc_pop(srx, sout, sizeof sout[0], NULL, 1000000), SHMPRIM_TIMEOUT);
    EXPECT(shmprim_spsc_push(stx, &item, sizeof item, 0), SHMPRIM_OK);
    shmprim_spsc_producer_close(stx); /* end-of-stream after what was pushed */
    EXPECT(shmprim_spsc_pop(srx, sout, sizeof sout[0], NULL, -1), SHMPRIM_OK);
    expect_true("the last element arrives after the close", sout[0] == 42);
    EXPECT(shmprim_spsc_pop(srx, sout, sizeof sout[0], NULL, -1), SHMPRIM_CLOSED);
    EXPECT(shmprim_spsc_pop_many(srx, sout, 8, &spopped), SHMPRIM_CLOSED);
    EXPECT(shmprim_spsc_claim_producer(ring, &stx), SHMPRIM_OK); /* a closed end can be claimed again */
    shmprim_spsc_consumer_close(srx);
    for (int i = 0; i < 4; i++) EXPECT(shmprim_spsc_push(stx, &item, sizeof item, 0), SHMPRIM_OK);
    EXPECT(shmprim_spsc_push(stx, &item, sizeof item, -1), SHMPRIM_CLOSED); /* full, and nobody consumes */
    shmprim_spsc_producer_close(stx);
    shmprim_spsc_close(ring);
    EXPECT(shmprim_spsc_unlink(sname), SHMPRIM_OK);
    EXPECT(shmprim_spsc_unlink(sname), SHMPRIM_NOT_FOUND);

    /* A create with a capacity out of range makes no file: the name stays free. */
    char pname[64];
    snprintf(pname, sizeof pname, "shmprim-example-bad-pipe-%d", (int)getpid());
    shmprim_pipe *huge = NULL;
    EXPECT(shmprim_pipe_create(pname, SIZE_MAX, 8, 1, NULL, &huge), SHMPRIM_INVALID_ARGUMENT);
    shmprim_byte_ring *huge_ring = NULL;
    EXPECT(shmprim_byte_ring_create(pname, SIZE_MAX, 8, NULL, &huge_ring), SHMPRIM_INVALID_ARGUMENT);
    EXPECT(shmprim_pipe_unlink(pname), SHMPRIM_NOT_FOUND);

    /* A typed unlink removes only its own kind of shmprim object: a file of
     * another program, a glibc named semaphore and an event are left alone. */
    char fname[64], fpath[96];
    snprintf(fname, sizeof fname, "shmprim-example-bad-foreign-%d", (int)getpid());
    snprintf(fpath, sizeof fpath, "/dev/shm/%s", fname);
    FILE *foreign = fopen(fpath, "w");
    expect_true("a foreign file can be made", foreign != NULL);
    if (foreign) {
        for (int i = 0; i < 8192; i++) fputc(7, foreign);
        fclose(foreign);
    }
    EXPECT(shmprim_mutex_unlink(fname), SHMPRIM_NOT_SHMPRIM);
    EXPECT(shmprim_queue_unlink(fname), SHMPRIM_NOT_SHMPRIM);
    EXPECT(shmprim_segment_unlink(fname), SHMPRIM_NOT_SHMPRIM);
    expect_true("the foreign file is still there", access(fpath, F_OK) == 0);
    unlink(fpath);
    char sem_name[64], sem_file[72];
    snprintf(sem_name, sizeof sem_name, "/shmprim-example-bad-sem-%d", (int)getpid());
    snprintf(sem_file, sizeof sem_file, "sem.%s", sem_name + 1);
    sem_t *gsem = sem_open(sem_name, O_CREAT | O_EXCL, 0600, 1);
    expect_true("a glibc semaphore can be made", gsem != SEM_FAILED);
    EXPECT(shmprim_mutex_unlink(sem_file), SHMPRIM_NOT_SHMPRIM);
    expect_true("the glibc semaphore is still there", sem_unlink(sem_name) == 0);
    if (gsem != SEM_FAILED) sem_close(gsem);
    EXPECT(shmprim_event_create(ename, NULL, &e), SHMPRIM_OK);
    EXPECT(shmprim_mutex_unlink(ename), SHMPRIM_INCOMPATIBLE);
    EXPECT(shmprim_event_unlink(ename), SHMPRIM_OK);
    shmprim_event_close(e);

    /* Python's Lock.locked(), an RLock's owner and count, Condition.notify(n). */
    shmprim_mutex *lm = NULL;
    EXPECT(shmprim_mutex_anonymous(8, 8, NULL, &lm), SHMPRIM_OK);
    expect_true("a fresh mutex is not locked", !shmprim_mutex_locked(lm));
    EXPECT(shmprim_mutex_lock(lm, -1), SHMPRIM_OK);
    expect_true("a held mutex is locked", shmprim_mutex_locked(lm));
    EXPECT(shmprim_mutex_unlock(lm), SHMPRIM_OK);
    expect_true("a released mutex is not locked", !shmprim_mutex_locked(lm));
    expect_true("a null mutex is not locked", !shmprim_mutex_locked(NULL));
    shmprim_mutex_close(lm);
    shmprim_rmutex *rlock = NULL;
    EXPECT(shmprim_rmutex_anonymous(8, 8, NULL, &rlock), SHMPRIM_OK);
    uint32_t owner = 1;
    expect_true("a free rmutex has depth 0 and no owner",
                shmprim_rmutex_depth(rlock, &owner) == 0 && owner == 0);
    EXPECT(shmprim_rmutex_lock(rlock, -1), SHMPRIM_OK);
    EXPECT(shmprim_rmutex_lock(rlock, -1), SHMPRIM_OK);
    expect_true("held twice: depth 2, owned by this thread",
                shmprim_rmutex_depth(rlock, &owner) == 2 && owner == (uint32_t)gettid());
    expect_true("a held rmutex is locked", shmprim_rmutex_locked(rlock));
    EXPECT(shmprim_rmutex_unlock(rlock), SHMPRIM_OK);
    EXPECT(shmprim_rmutex_unlock(rlock), SHMPRIM_OK);
    expect_true("a released rmutex is not locked", !shmprim_rmutex_locked(rlock));
    shmprim_rmutex_close(rlock);
    EXPECT(shmprim_condvar_notify(NULL, 2), SHMPRIM_NULL_POINTER);

    /* Python's Barrier action: run by the last party to arrive, once per trip. */
    shmprim_barrier *solo = NULL;
    EXPECT(shmprim_barrier_anonymous(1, &solo), SHMPRIM_OK);
    int actions = 0;
    size_t solo_index = 9;
    EXPECT(shmprim_barrier_wait_action(solo, -1, &solo_index, count_call, &actions), SHMPRIM_OK);
    EXPECT(shmprim_barrier_wait_action(solo, -1, NULL, count_call, &actions), SHMPRIM_OK);
    EXPECT(shmprim_barrier_wait_action(solo, -1, NULL, NULL, NULL), SHMPRIM_OK);
    expect_true("the action ran once per trip", actions == 2 && solo_index == 0);
    EXPECT(shmprim_barrier_wait_action(NULL, -1, NULL, count_call, &actions), SHMPRIM_NULL_POINTER);
    shmprim_barrier_close(solo);

    printf("bad_calls: %d checks %s\n", checks, failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
