/*
 * The in-place forms: every synchronization primitive sits inside one C
 * struct in memory the program maps itself (MAP_SHARED | MAP_ANONYMOUS, shared
 * with forked children), as pthread objects do.  Three workers wait for an
 * Event, pass a Semaphore of 2 permits (never more than 2 inside at once),
 * add to a counter under a Mutex (through a reentrant mutex taken twice, as
 * well), report completion through a Condvar, and meet at a Barrier.
 * Prints "sync_inplace: counter 3000, at most 2 inside ok" on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

#define WORKERS 3
#define ROUNDS 1000

struct shared {
    _Alignas(SHMPRIM_MUTEX_ALIGN) unsigned char lock[SHMPRIM_MUTEX_SIZE];
    _Alignas(SHMPRIM_RMUTEX_ALIGN) unsigned char rlock[SHMPRIM_RMUTEX_SIZE];
    _Alignas(SHMPRIM_CONDVAR_ALIGN) unsigned char done_cv[SHMPRIM_CONDVAR_SIZE];
    _Alignas(SHMPRIM_SEMAPHORE_ALIGN) unsigned char pool[SHMPRIM_SEMAPHORE_SIZE];
    _Alignas(SHMPRIM_EVENT_ALIGN) unsigned char go[SHMPRIM_EVENT_SIZE];
    _Alignas(SHMPRIM_BARRIER_ALIGN) unsigned char finish[SHMPRIM_BARRIER_SIZE];
    /* Guarded by `lock`: */
    uint64_t counter;
    uint32_t inside, max_inside, done;
    /* Guarded by `rlock`: */
    uint64_t nested;
};

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

#define CHECK(call)                                            \
    do {                                                       \
        shmprim_status st_ = (call);                           \
        if (st_ != SHMPRIM_OK) return fail(#call, st_);        \
    } while (0)

static const int64_t TEN_S = 10000000000LL;

static int worker(struct shared *s) {
    CHECK(shmprim_event_wait_at(s->go, TEN_S));
    CHECK(shmprim_semaphore_acquire_at(s->pool, TEN_S));
    CHECK(shmprim_mutex_lock_at(s->lock, TEN_S));
    s->inside++;
    if (s->inside > s->max_inside) s->max_inside = s->inside;
    CHECK(shmprim_mutex_unlock_at(s->lock));
    for (int i = 0; i < ROUNDS; i++) {
        CHECK(shmprim_mutex_lock_at(s->lock, TEN_S));
        s->counter++;
        CHECK(shmprim_mutex_unlock_at(s->lock));
    }
    CHECK(shmprim_rmutex_lock_at(s->rlock, TEN_S));
    CHECK(shmprim_rmutex_lock_at(s->rlock, TEN_S)); /* again: reentrant */
    s->nested++;
    CHECK(shmprim_rmutex_unlock_at(s->rlock));
    CHECK(shmprim_rmutex_unlock_at(s->rlock));
    CHECK(shmprim_mutex_lock_at(s->lock, TEN_S));
    s->inside--;
    s->done++;
    CHECK(shmprim_mutex_unlock_at(s->lock));
    CHECK(shmprim_semaphore_release_at(s->pool, 1));
    CHECK(shmprim_condvar_notify_all_at(s->done_cv));
    size_t index;
    CHECK(shmprim_barrier_wait_at(s->finish, TEN_S, &index));
    return 0;
}

int main(void) {
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) return 1;
    CHECK(shmprim_mutex_init(s->lock, 0));
    CHECK(shmprim_rmutex_init(s->rlock, 0));
    CHECK(shmprim_condvar_init(s->done_cv));
    CHECK(shmprim_semaphore_init(s->pool, 2, 2));
    CHECK(shmprim_event_init(s->go));
    CHECK(shmprim_barrier_init(s->finish, WORKERS + 1));

    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) _exit(worker(s));
    }
    CHECK(shmprim_event_set_at(s->go));

    /* Wait on the condvar until every worker reported. */
    int ok = 1;
    CHECK(shmprim_mutex_lock_at(s->lock, TEN_S));
    while (s->done < WORKERS) {
        shmprim_status st = shmprim_condvar_wait_at(s->done_cv, s->lock, TEN_S);
        if (st == SHMPRIM_TIMEOUT) { ok = 0; break; }
        if (st != SHMPRIM_OK) return fail("condvar wait", st);
    }
    uint64_t counter = s->counter;
    uint32_t max_inside = s->max_inside;
    CHECK(shmprim_mutex_unlock_at(s->lock));
    size_t index;
    CHECK(shmprim_barrier_wait_at(s->finish, TEN_S, &index));

    for (int i = 0; i < WORKERS; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    uint32_t permits = 0;
    CHECK(shmprim_semaphore_value_at(s->pool, &permits));
    ok = ok && counter == WORKERS * ROUNDS && max_inside >= 1 && max_inside <= 2 && permits == 2;
    ok = ok && s->nested == WORKERS;
    /* The bounded semaphore refuses a release beyond its bound. */
    ok = ok && shmprim_semaphore_release_at(s->pool, 1) == SHMPRIM_OVERFLOW;
    printf("sync_inplace: counter %llu, at most %u inside %s\n", (unsigned long long)counter, max_inside,
           ok ? "ok" : "WRONG");
    munmap(s, sizeof *s);
    return ok ? 0 : 1;
}
