/*
 * The C side of a lock shared with Python: opens the mutex and the one-int
 * array a Python test made (`shmprim.Lock`, `shmprim.Value("i")`), then N
 * times takes the lock, reads the value, sleeps a little, writes it back
 * plus one, and releases. If Python's increments and these ever overlapped,
 * the final count would come out short. Prints "done" at the end.
 * Usage: lock_turns LOCK_NAME VALUE_NAME N
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "shmprim.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: lock_turns LOCK VALUE N\n");
        return 2;
    }
    shmprim_mutex *m = NULL;
    shmprim_array *a = NULL;
    if (shmprim_mutex_open(argv[1], &m) != SHMPRIM_OK) {
        fprintf(stderr, "mutex: %s\n", shmprim_last_error_message());
        return 1;
    }
    if (shmprim_array_open(argv[2], SHMPRIM_TYPE_I32, &a) != SHMPRIM_OK) {
        fprintf(stderr, "array: %s\n", shmprim_last_error_message());
        return 1;
    }
    int n = atoi(argv[3]);
    struct timespec nap = {0, 20000};
    for (int i = 0; i < n; i++) {
        shmprim_status st = shmprim_mutex_lock(m, 10000000000LL);
        if (st != SHMPRIM_OK && st != SHMPRIM_OWNER_DIED) {
            fprintf(stderr, "lock: %s\n", shmprim_status_str(st));
            return 1;
        }
        int32_t v = 0;
        if (shmprim_array_read(a, 0, &v, 1) != SHMPRIM_OK) return 1;
        nanosleep(&nap, NULL);
        v += 1;
        if (shmprim_array_write(a, 0, &v, 1) != SHMPRIM_OK) return 1;
        if (shmprim_mutex_unlock(m) != SHMPRIM_OK) return 1;
    }
    shmprim_array_close(a);
    shmprim_mutex_close(m);
    printf("done\n");
    return 0;
}
