/*
 * A mutex owner dies holding the lock and the survivor recovers (robust
 * mutex semantics).  A forked child locks the named mutex, writes half of an
 * update (a two-field record whose fields must match) and dies with _exit
 * without unlocking.  The parent's lock then returns SHMPRIM_OWNER_DIED: it
 * holds the lock, repairs the record, calls shmprim_mutex_consistent and
 * unlocks; later locks succeed normally.  A second round shows the other
 * choice: unlocking without consistent leaves the decision to the next
 * locker, which is told SHMPRIM_OWNER_DIED in turn.
 * Prints "mutex_owner_died: recovered ok" on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

struct record {
    uint64_t balance;
    uint64_t checksum; /* always equals balance once an update is complete */
};

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

/* A child that opens the mutex, locks it, half-updates the record and dies. */
static int die_holding(const char *name) {
    pid_t pid = fork();
    if (pid == 0) {
        shmprim_mutex *m = NULL;
        if (shmprim_mutex_open(name, &m) != SHMPRIM_OK) _exit(2);
        if (shmprim_mutex_lock(m, -1) != SHMPRIM_OK) _exit(3);
        struct record *r = shmprim_mutex_data(m);
        r->balance += 100; /* ... and dies before updating the checksum */
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "shmprim-example-owner-died-%d", (int)getpid());

    shmprim_mutex *m = NULL;
    shmprim_status st = shmprim_mutex_create(name, sizeof(struct record), _Alignof(struct record), NULL, &m);
    if (st != SHMPRIM_OK) return fail("create", st);
    int ok = die_holding(name);

    /* The survivor gets the lock, and the news. */
    st = shmprim_mutex_lock(m, 5000000000LL);
    ok = ok && st == SHMPRIM_OWNER_DIED;
    struct record *r = shmprim_mutex_data(m);
    ok = ok && r->balance == 100 && r->checksum == 0;
    r->checksum = r->balance; /* repair */
    ok = ok && shmprim_mutex_consistent(m) == SHMPRIM_OK;
    ok = ok && shmprim_mutex_unlock(m) == SHMPRIM_OK;
    /* Usable again, normally. */
    ok = ok && shmprim_mutex_lock(m, 0) == SHMPRIM_OK;
    ok = ok && r->balance == r->checksum;
    ok = ok && shmprim_mutex_unlock(m) == SHMPRIM_OK;

    /* Second round: unlock without consistent; the next locker is told. */
    ok = ok && die_holding(name);
    ok = ok && shmprim_mutex_lock(m, 5000000000LL) == SHMPRIM_OWNER_DIED;
    ok = ok && shmprim_mutex_unlock(m) == SHMPRIM_OK;
    ok = ok && shmprim_mutex_lock(m, -1) == SHMPRIM_OWNER_DIED;
    ok = ok && shmprim_mutex_consistent(m) == SHMPRIM_OK;
    ok = ok && shmprim_mutex_unlock(m) == SHMPRIM_OK;
    ok = ok && shmprim_mutex_lock(m, 0) == SHMPRIM_OK;
    ok = ok && shmprim_mutex_unlock(m) == SHMPRIM_OK;

    shmprim_mutex_close(m);
    shmprim_mutex_unlink(name);
    printf("mutex_owner_died: %s\n", ok ? "recovered ok" : "WRONG");
    return ok ? 0 : 1;
}
