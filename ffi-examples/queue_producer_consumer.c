/*
 * Producers and consumers over one named Queue (Python's Queue example): 2
 * producer processes put 5000 jobs each, 2 consumer processes take them until
 * the parent shuts the queue, and the totals must come out exact: every job
 * taken exactly once.  A byte queue carries each consumer's report back: the
 * consumers open the job queue by name, but use the report queue's handle
 * they inherited through fork (as Python passes a Queue to a Process).
 * Prints "queue_producer_consumer: 10000 jobs, sum 50005000 ok".
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

#define PRODUCERS 2
#define CONSUMERS 2
#define JOBS 5000 /* per producer */

struct job {
    uint32_t producer;
    uint32_t seq;
    uint64_t payload; /* 1 .. PRODUCERS * JOBS, each once */
};

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

static int producer(const char *qname, uint32_t me) {
    shmprim_queue *q = NULL;
    shmprim_status st = shmprim_queue_open(qname, &q);
    if (st != SHMPRIM_OK) return fail("producer open", st);
    for (uint32_t i = 0; i < JOBS; i++) {
        struct job j = {me, i, (uint64_t)me * JOBS + i + 1};
        st = shmprim_queue_put(q, &j, sizeof j, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("put", st);
    }
    shmprim_queue_close(q);
    return 0;
}

static int consumer(const char *qname, shmprim_byte_queue *reports) {
    shmprim_queue *q = NULL;
    shmprim_status st = shmprim_queue_open(qname, &q);
    if (st != SHMPRIM_OK) return fail("consumer open", st);
    uint64_t count = 0, sum = 0;
    uint32_t last_seq[PRODUCERS];
    memset(last_seq, 0xff, sizeof last_seq);
    struct job j;
    while ((st = shmprim_queue_get(q, &j, sizeof j, NULL, 10000000000LL)) == SHMPRIM_OK) {
        if (j.producer >= PRODUCERS) return fail("bad job", SHMPRIM_CORRUPTED);
        /* One producer's jobs come out in the order it put them. */
        if (last_seq[j.producer] != UINT32_MAX && j.seq <= last_seq[j.producer])
            return fail("out of order", SHMPRIM_CORRUPTED);
        last_seq[j.producer] = j.seq;
        count++;
        sum += j.payload;
    }
    if (st != SHMPRIM_CLOSED) return fail("get", st);
    char report[64];
    int n = snprintf(report, sizeof report, "%" PRIu64 " %" PRIu64, count, sum);
    st = shmprim_byte_queue_put(reports, report, (size_t)n, 10000000000LL);
    if (st != SHMPRIM_OK) return fail("report", st);
    shmprim_queue_close(q);
    return 0;
}

static int reap(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void) {
    char qname[64], rname[64];
    snprintf(qname, sizeof qname, "shmprim-example-jobs-%d", (int)getpid());
    snprintf(rname, sizeof rname, "shmprim-example-reports-%d", (int)getpid());
    shmprim_queue *q = NULL;
    shmprim_byte_queue *reports = NULL;
    shmprim_status st = shmprim_queue_create(qname, 64, sizeof(struct job), _Alignof(struct job), NULL, &q);
    if (st != SHMPRIM_OK) return fail("create", st);
    st = shmprim_byte_queue_create(rname, CONSUMERS, 64, NULL, &reports);
    if (st != SHMPRIM_OK) return fail("create reports", st);

    pid_t consumers[CONSUMERS], producers[PRODUCERS];
    for (int i = 0; i < CONSUMERS; i++)
        if ((consumers[i] = fork()) == 0) _exit(consumer(qname, reports));
    for (int i = 0; i < PRODUCERS; i++)
        if ((producers[i] = fork()) == 0) _exit(producer(qname, (uint32_t)i));
    int ok = 1;
    for (int i = 0; i < PRODUCERS; i++) ok = reap(producers[i]) && ok;
    /* Every job is in; shut the queue: consumers drain it, then see CLOSED. */
    shmprim_queue_shutdown(q, false);
    for (int i = 0; i < CONSUMERS; i++) ok = reap(consumers[i]) && ok;

    uint64_t count = 0, sum = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        char buf[64];
        size_t len = 0;
        st = shmprim_byte_queue_get(reports, buf, sizeof buf - 1, &len, 0);
        if (st != SHMPRIM_OK) return fail("report get", st);
        buf[len] = '\0';
        uint64_t c = 0, s = 0;
        if (sscanf(buf, "%" SCNu64 " %" SCNu64, &c, &s) != 2) return fail("report parse", SHMPRIM_CORRUPTED);
        count += c;
        sum += s;
    }
    const uint64_t n = (uint64_t)PRODUCERS * JOBS;
    ok = ok && count == n && sum == n * (n + 1) / 2;
    size_t left = 99;
    ok = ok && shmprim_queue_len(q, &left, NULL) == SHMPRIM_OK && left == 0;

    shmprim_queue_close(q);
    shmprim_byte_queue_close(reports);
    shmprim_queue_unlink(qname);
    shmprim_byte_queue_unlink(rname);
    printf("queue_producer_consumer: %" PRIu64 " jobs, sum %" PRIu64 " %s\n", count, sum, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
