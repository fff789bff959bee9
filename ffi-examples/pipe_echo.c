/*
 * A Pipe echo (Python's Pipe example): the parent creates a named duplex pipe
 * and claims end A; a forked child opens it by name, claims end B and echoes
 * every message back upper-cased until the parent closes its end
 * (SHMPRIM_CLOSED is end-of-file).  The parent receives the first echo into a
 * buffer that is too small, learns the size it needs from
 * SHMPRIM_BUFFER_TOO_SMALL, and receives it again.
 * Prints "pipe_echo: 100 messages echoed ok".
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

#define MESSAGES 100

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

static int echo(const char *name) {
    shmprim_pipe *p = NULL;
    shmprim_pipe_end *b = NULL;
    shmprim_status st = shmprim_pipe_open(name, &p);
    if (st != SHMPRIM_OK) return fail("open", st);
    st = shmprim_pipe_end_b(p, &b);
    if (st != SHMPRIM_OK) return fail("end b", st);
    char buf[256];
    size_t len = 0;
    int echoed = 0;
    while ((st = shmprim_pipe_recv(b, buf, sizeof buf, &len, 10000000000LL)) == SHMPRIM_OK) {
        for (size_t i = 0; i < len; i++) buf[i] = (char)toupper((unsigned char)buf[i]);
        st = shmprim_pipe_send(b, buf, len, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("echo send", st);
        echoed++;
    }
    if (st != SHMPRIM_CLOSED) return fail("recv", st);
    /* The message names the pipe: segment "shmprim-example-pipe-N": closed. */
    if (strstr(shmprim_last_error_message(), name) == NULL) return fail("closed names the pipe", st);
    shmprim_pipe_end_close(b);
    shmprim_pipe_close(p);
    return echoed == MESSAGES ? 0 : 3;
}

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "shmprim-example-pipe-%d", (int)getpid());
    shmprim_pipe *p = NULL;
    shmprim_pipe_end *a = NULL;
    shmprim_status st = shmprim_pipe_create(name, 4096, 256, 1, NULL, &p);
    if (st != SHMPRIM_OK) return fail("create", st);
    st = shmprim_pipe_end_a(p, &a);
    if (st != SHMPRIM_OK) return fail("end a", st);

    pid_t pid = fork();
    if (pid == 0) _exit(echo(name));

    int ok = 1;
    for (int i = 0; i < MESSAGES && ok; i++) {
        char msg[64], expect[64], buf[64];
        snprintf(msg, sizeof msg, "message number %d", i);
        for (size_t j = 0; j <= strlen(msg); j++) expect[j] = (char)toupper((unsigned char)msg[j]);
        st = shmprim_pipe_send(a, msg, strlen(msg), 10000000000LL);
        if (st != SHMPRIM_OK) return fail("send", st);
        size_t len = 0;
        if (i == 0) {
            /* Too small: the status says how much is needed; nothing is lost. */
            char tiny[4];
            st = shmprim_pipe_recv(a, tiny, sizeof tiny, &len, 10000000000LL);
            ok = ok && st == SHMPRIM_BUFFER_TOO_SMALL && len == strlen(msg);
        }
        st = shmprim_pipe_recv(a, buf, sizeof buf, &len, 10000000000LL);
        if (st != SHMPRIM_OK) return fail("recv echo", st);
        ok = ok && len == strlen(expect) && memcmp(buf, expect, len) == 0;
    }
    shmprim_pipe_end_close(a); /* the child's recv now reports SHMPRIM_CLOSED */

    int status = 0;
    waitpid(pid, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    shmprim_pipe_close(p);
    shmprim_pipe_unlink(name);
    printf("pipe_echo: %d messages echoed %s\n", MESSAGES, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
