/*
 * The C half of a cross-language test (tests/c_examples.rs): a C process and
 * a Rust process alternate strictly on one counter guarded by a named mutex.
 *
 *   xlang_mutex_peer MUTEX_NAME CONDVAR_NAME ROUNDS
 *
 * This program creates the mutex with an 8-byte payload (which the Rust side
 * opens as a Mutex<u64>) and opens the condvar the Rust side created.  It
 * increments the counter only when it is even (Rust: only when odd), ROUNDS
 * times, waiting on the condvar for its turn and notifying after each turn.
 * Prints "xlang_mutex_peer: ROUNDS turns, final F" on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "shmprim.h"

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "xlang_mutex_peer: %s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    const char *mname = argv[1], *cname = argv[2];
    long rounds = atol(argv[3]);

    shmprim_condvar *cv = NULL;
    shmprim_status st;
    for (int tries = 0; (st = shmprim_condvar_open(cname, &cv)) == SHMPRIM_NOT_FOUND && tries < 1000; tries++)
        usleep(10000);
    if (st != SHMPRIM_OK) return fail("condvar open", st);
    shmprim_mutex *m = NULL;
    st = shmprim_mutex_create(mname, sizeof(uint64_t), _Alignof(uint64_t), NULL, &m);
    if (st != SHMPRIM_OK) return fail("mutex create", st);

    uint64_t final = 0;
    for (long turn = 0; turn < rounds; turn++) {
        st = shmprim_mutex_lock(m, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("lock", st);
        uint64_t *counter = shmprim_mutex_data(m);
        while (*counter % 2 != 0) {
            st = shmprim_condvar_wait(cv, m, 10000000000LL);
            if (st != SHMPRIM_OK) return fail("wait for my turn", st);
        }
        if (*counter != (uint64_t)turn * 2) return fail("strict alternation", SHMPRIM_CORRUPTED);
        *counter += 1;
        final = *counter;
        st = shmprim_mutex_unlock(m);
        if (st != SHMPRIM_OK) return fail("unlock", st);
        st = shmprim_condvar_notify_all(cv);
        if (st != SHMPRIM_OK) return fail("notify", st);
    }
    /* Wait for the Rust side's last turn. */
    st = shmprim_mutex_lock(m, 10000000000LL);
    if (st != SHMPRIM_OK) return fail("final lock", st);
    while (*(uint64_t *)shmprim_mutex_data(m) != (uint64_t)rounds * 2) {
        st = shmprim_condvar_wait(cv, m, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("wait for the last turn", st);
    }
    final = *(uint64_t *)shmprim_mutex_data(m);
    shmprim_mutex_unlock(m);
    shmprim_mutex_close(m);
    shmprim_condvar_close(cv);
    printf("xlang_mutex_peer: %ld turns, final %llu\n", rounds, (unsigned long long)final);
    return 0;
}
