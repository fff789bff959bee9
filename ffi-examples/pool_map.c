/*
 * Python's Pool(4).map(f, range(10)) in C, with one task calling abort():
 *
 *     with Pool(4) as p:
 *         print(p.map(f, range(10)))
 *
 * The pool forks four workers that run `square` over an array of tasks;
 * task 6 aborts its worker. Only that task is lost (SHMPRIM_WORKER_DIED), a
 * replacement worker is forked, and every other result comes back in order.
 * Prints "pool_map: 0 1 4 9 16 25 lost 49 64 81 ok".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "shmprim.h"

#define TASKS 10

static int square(const void *task, void *result, void *ctx) {
    (void)ctx;
    int64_t x = *(const int64_t *)task;
    if (x == 6) abort();
    *(int64_t *)result = x * x;
    return 0;
}

int main(void) {
    shmprim_pool *p = NULL;
    shmprim_status st = shmprim_pool_create(4, &p);
    if (st != SHMPRIM_OK) {
        fprintf(stderr, "create: %s (%s)\n", shmprim_status_str(st), shmprim_last_error_message());
        return 1;
    }
    int64_t tasks[TASKS], results[TASKS];
    int32_t statuses[TASKS];
    for (int i = 0; i < TASKS; i++) tasks[i] = i;
    st = shmprim_pool_map(p, square, NULL, tasks, TASKS, sizeof tasks[0], results, sizeof results[0], statuses);
    if (st != SHMPRIM_OK) {
        fprintf(stderr, "map: %s (%s)\n", shmprim_status_str(st), shmprim_last_error_message());
        shmprim_pool_close(p);
        return 1;
    }
    int ok = 1;
    printf("pool_map:");
    for (int i = 0; i < TASKS; i++) {
        if (i == 6) {
            ok &= statuses[i] == SHMPRIM_WORKER_DIED;
            printf(" lost");
        } else {
            ok &= statuses[i] == SHMPRIM_OK && results[i] == (int64_t)i * i;
            printf(" %lld", (long long)results[i]);
        }
    }
    /* The pool carries on after the death. */
    st = shmprim_pool_map(p, square, NULL, tasks, 5, sizeof tasks[0], results, sizeof results[0], statuses);
    ok &= st == SHMPRIM_OK && statuses[4] == SHMPRIM_OK && results[4] == 16;
    ok &= shmprim_pool_workers(p) == 4;
    shmprim_pool_close(p);
    printf(ok ? " ok\n" : " WRONG\n");
    return ok ? 0 : 1;
}
