/*
 * Barrier phases (Python's Barrier example): 3 processes work in 3 phases.
 * In each phase every process writes its slot of a shared segment, waits at
 * the named barrier, then checks that every other process finished the same
 * phase before any moves on.  Exactly one process per phase gets index 0.
 * Prints "barrier_phases: 3 phases x 3 processes ok" on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

#define PARTIES 3
#define PHASES 3

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

/* slots[0..PARTIES): the phase each process last finished;
 * slots[PARTIES + phase]: how many processes got index 0 in that phase. */
static int party(const char *bname, const char *sname, int me) {
    shmprim_barrier *b = NULL;
    shmprim_segment *seg = NULL;
    shmprim_status st = shmprim_barrier_open(bname, &b);
    if (st != SHMPRIM_OK) return fail("barrier open", st);
    st = shmprim_segment_open(sname, &seg);
    if (st != SHMPRIM_OK) return fail("segment open", st);
    volatile uint32_t *slots = (volatile uint32_t *)shmprim_segment_data(seg);
    for (uint32_t phase = 1; phase <= PHASES; phase++) {
        slots[me] = phase;
        size_t index = 99;
        st = shmprim_barrier_wait(b, 10000000000LL, &index);
        if (st != SHMPRIM_OK) return fail("wait", st);
        if (index == 0) __atomic_fetch_add(&slots[PARTIES + phase], 1, __ATOMIC_SEQ_CST);
        for (int other = 0; other < PARTIES; other++)
            if (slots[other] < phase) return fail("a party ran ahead", SHMPRIM_CORRUPTED);
        /* Nobody writes the next phase before everyone has checked this one. */
        st = shmprim_barrier_wait(b, 10000000000LL, NULL);
        if (st != SHMPRIM_OK) return fail("second wait", st);
    }
    shmprim_barrier_close(b);
    shmprim_segment_close(seg);
    return 0;
}

int main(void) {
    char bname[64], sname[64];
    snprintf(bname, sizeof bname, "shmprim-example-barrier-%d", (int)getpid());
    snprintf(sname, sizeof sname, "shmprim-example-barrier-slots-%d", (int)getpid());
    shmprim_barrier *b = NULL;
    shmprim_segment *seg = NULL;
    shmprim_status st = shmprim_barrier_create(bname, PARTIES, NULL, &b);
    if (st != SHMPRIM_OK) return fail("barrier create", st);
    st = shmprim_segment_create(sname, 4096, 0, &seg);
    if (st != SHMPRIM_OK) return fail("segment create", st);

    pid_t pids[PARTIES - 1];
    for (int i = 0; i < PARTIES - 1; i++) {
        pids[i] = fork();
        if (pids[i] == 0) _exit(party(bname, sname, i + 1));
    }
    int ok = party(bname, sname, 0) == 0;
    for (int i = 0; i < PARTIES - 1; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    uint32_t *slots = (uint32_t *)shmprim_segment_data(seg);
    for (int phase = 1; phase <= PHASES; phase++) ok = ok && slots[PARTIES + phase] == 1;

    uint32_t parties = 0;
    bool broken = true;
    ok = ok && shmprim_barrier_info(b, &parties, NULL, &broken) == SHMPRIM_OK && parties == PARTIES && !broken;
    /* Abort breaks it for everyone (Python's BrokenBarrierError). */
    shmprim_barrier_abort(b);
    ok = ok && shmprim_barrier_wait(b, 0, NULL) == SHMPRIM_BROKEN_BARRIER;

    shmprim_barrier_close(b);
    shmprim_segment_close(seg);
    shmprim_barrier_unlink(bname);
    shmprim_segment_unlink(sname);
    printf("barrier_phases: %d phases x %d processes %s\n", PHASES, PARTIES, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
