/*
 * Two processes share bytes through a named segment (Python's SharedMemory):
 * the parent creates it, a forked child opens it by name and writes a greeting,
 * the parent reads it back.  Prints "segment_share: ok" on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "shmprim-example-segment-%d", (int)getpid());

    shmprim_segment *seg = NULL;
    shmprim_status st = shmprim_segment_create(name, 4096, 0600, &seg);
    if (st != SHMPRIM_OK) return fail("create", st);

    pid_t pid = fork();
    if (pid == 0) {
        shmprim_segment *child = NULL;
        if (shmprim_segment_open(name, &child) != SHMPRIM_OK) _exit(2);
        strcpy((char *)shmprim_segment_data(child), "hello from the child");
        shmprim_segment_close(child);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child failed\n");
        return 1;
    }
    const char *text = (const char *)shmprim_segment_data(seg);
    int ok = strcmp(text, "hello from the child") == 0;

    /* Errors come back as statuses with a message. */
    shmprim_segment *again = NULL;
    st = shmprim_segment_create(name, 4096, 0, &again);
    ok = ok && st == SHMPRIM_ALREADY_EXISTS && strstr(shmprim_last_error_message(), name) != NULL;
    ok = ok && shmprim_segment_open("bad/name", &again) == SHMPRIM_INVALID_NAME;
    ok = ok && shmprim_segment_open(name, NULL) == SHMPRIM_NULL_POINTER;

    shmprim_segment_close(seg);
    shmprim_segment_unlink(name);
    printf("segment_share: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
