/*
 * A mutex's bytes are untrusted: random values written over an in-place
 * mutex (and a reentrant one) while it is held and while it is free make
 * every call return a status, within its timeout, and never make the
 * library write outside the mutex. The mutexes live in exactly-sized heap
 * blocks, so that memcheck (`valgrind`, as the tests run this) reports any
 * write past them; a lock that linked pointers kept in its bytes into a
 * per-thread list (glibc's robust mutex) would follow forged ones here.
 * Prints "mutex_scribble: N rounds ok" on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmprim.h"

#define ROUNDS 3000

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* One to four random writes, 1, 2, 4 or 8 bytes wide and aligned, inside
 * the `size` bytes at `mem`. */
static void scribble(unsigned char *mem, size_t size) {
    int n = 1 + (int)(next() % 4);
    for (int i = 0; i < n; i++) {
        size_t width = (size_t)1 << (next() % 4);
        size_t offset = (size_t)(next() % (size - width + 1)) & ~(width - 1);
        uint64_t value;
        switch (next() % 4) {
        case 0: value = next(); break;
        case 1: value = next() % 256; break;
        case 2: value = UINT64_MAX - next() % 4; break;
        default: value = 0; break;
        }
        memcpy(mem + offset, &value, width);
    }
}

/* Whether `st` is a status a lock call may return on scribbled bytes. */
static int lock_status_ok(shmprim_status st) {
    return st == SHMPRIM_OK || st == SHMPRIM_OWNER_DIED || st == SHMPRIM_TIMEOUT ||
           st == SHMPRIM_CORRUPTED || st == SHMPRIM_UNRECOVERABLE ||
           st == SHMPRIM_INVALID_ARGUMENT;
}

static int unlock_status_ok(shmprim_status st) {
    return st == SHMPRIM_OK || st == SHMPRIM_NOT_OWNER || st == SHMPRIM_CORRUPTED;
}

typedef shmprim_status (*init_fn)(void *, uint32_t);
typedef shmprim_status (*lock_fn)(void *, int64_t);
typedef shmprim_status (*unlock_fn)(void *);

static int rounds(const char *what, size_t size, init_fn init, lock_fn lock, unlock_fn unlock,
                  unlock_fn consistent) {
    for (int round = 0; round < ROUNDS; round++) {
        /* A fresh block each round, of exactly the mutex's size. */
        unsigned char *mem = aligned_alloc(8, size);
        if (!mem) return 1;
        shmprim_status st = init(mem, 0);
        if (st != SHMPRIM_OK) {
            fprintf(stderr, "%s: init: %s\n", what, shmprim_status_str(st));
            return 1;
        }
        int held = round % 2 == 0;
        if (held && lock(mem, 0) != SHMPRIM_OK) {
            fprintf(stderr, "%s: round %d: a fresh mutex did not lock\n", what, round);
            return 1;
        }
        scribble(mem, size);
        for (int op = 0; op < 4; op++) {
            shmprim_status l = lock(mem, op == 0 ? 0 : 1000000);
            if (!lock_status_ok(l)) {
                fprintf(stderr, "%s: round %d: lock gave %s\n", what, round,
                        shmprim_status_str(l));
                return 1;
            }
            if (l == SHMPRIM_OWNER_DIED) (void)consistent(mem);
            shmprim_status u = unlock(mem);
            if (!unlock_status_ok(u)) {
                fprintf(stderr, "%s: round %d: unlock gave %s\n", what, round,
                        shmprim_status_str(u));
                return 1;
            }
            if (op == 1) scribble(mem, size);
        }
        free(mem);
    }
    return 0;
}

int main(void) {
    if (rounds("mutex", SHMPRIM_MUTEX_SIZE, shmprim_mutex_init, shmprim_mutex_lock_at,
               shmprim_mutex_unlock_at, shmprim_mutex_consistent_at))
        return 1;
    if (rounds("rmutex", SHMPRIM_RMUTEX_SIZE, shmprim_rmutex_init, shmprim_rmutex_lock_at,
               shmprim_rmutex_unlock_at, shmprim_rmutex_consistent_at))
        return 1;
    printf("mutex_scribble: %d rounds ok\n", 2 * ROUNDS);
    return 0;
}
