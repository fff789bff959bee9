/*
 * N processes increment one counter guarded by a named mutex (Python's
 * "Lock" example).  The parent creates the mutex with an 8-byte payload (the
 * counter lives inside the mutex's segment, like a Rust Mutex<u64>); each
 * forked child opens it by name and adds 10000 under the lock.
 * Prints "mutex_counter: total 40000 ok" on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

#define WORKERS 4
#define ROUNDS 10000

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

static int worker(const char *name) {
    shmprim_mutex *m = NULL;
    shmprim_status st = shmprim_mutex_open(name, &m);
    if (st != SHMPRIM_OK) return fail("open", st);
    if (shmprim_mutex_data_size(m) != sizeof(uint64_t)) return fail("payload size", SHMPRIM_INCOMPATIBLE);
    for (int i = 0; i < ROUNDS; i++) {
        st = shmprim_mutex_lock(m, -1);
        if (st != SHMPRIM_OK) return fail("lock", st);
        uint64_t *counter = shmprim_mutex_data(m);
        *counter += 1;
        st = shmprim_mutex_unlock(m);
        if (st != SHMPRIM_OK) return fail("unlock", st);
    }
    shmprim_mutex_close(m);
    return 0;
}

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "shmprim-example-counter-%d", (int)getpid());

    shmprim_mutex *m = NULL;
    shmprim_status st = shmprim_mutex_create(name, sizeof(uint64_t), _Alignof(uint64_t), NULL, &m);
    if (st != SHMPRIM_OK) return fail("create", st);

    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) _exit(worker(name));
    }
    int ok = 1;
    for (int i = 0; i < WORKERS; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }

    st = shmprim_mutex_lock(m, 5000000000LL);
    if (st != SHMPRIM_OK) return fail("final lock", st);
    uint64_t total = *(uint64_t *)shmprim_mutex_data(m);
    shmprim_mutex_unlock(m);
    shmprim_mutex_close(m);
    shmprim_mutex_unlink(name);

    ok = ok && total == (uint64_t)WORKERS * ROUNDS;
    printf("mutex_counter: total %llu %s\n", (unsigned long long)total, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
