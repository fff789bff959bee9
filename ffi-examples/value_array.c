/*
 * A Value and an Array shared between processes (the Python documentation's
 * example: a child sets num.value = 3.1415927 and negates arr[i] for
 * Value('d', 0.0) and Array('i', range(10))), plus 4 processes adding to a
 * counter Value('q') with atomic fetch_add, and an update under the array's
 * lock (Python's `with arr.get_lock():`).
 * Prints "value_array: 3.1415927 [0, -1, -2, -3, -4, -5, -6, -7, -8, -9] counter 4000 ok".
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmprim.h"

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

#define CHECK(call)                                            \
    do {                                                       \
        shmprim_status st_ = (call);                           \
        if (st_ != SHMPRIM_OK) return fail(#call, st_);        \
    } while (0)

/* Runs holding the array's lock, on the elements themselves. */
static int32_t negate(void *elems, size_t len, bool owner_died, void *ctx) {
    (void)ctx;
    int32_t *a = elems;
    for (size_t i = 0; i < len; i++) a[i] = -a[i];
    return owner_died ? 1 : 0; /* nothing half-done to repair here */
}

static int child(const char *vname, const char *aname) {
    shmprim_value *num = NULL;
    shmprim_array *arr = NULL;
    CHECK(shmprim_value_open(vname, SHMPRIM_TYPE_ANY, &num)); /* whatever it holds: a double */
    if (shmprim_value_type(num) != SHMPRIM_TYPE_F64) return fail("type", SHMPRIM_INCOMPATIBLE);
    CHECK(shmprim_array_open(aname, SHMPRIM_TYPE_I32, &arr));
    double pi = 3.1415927;
    CHECK(shmprim_value_set(num, &pi, sizeof pi));
    CHECK(shmprim_array_with_lock(arr, 5000000000LL, negate, NULL));
    shmprim_value_close(num);
    shmprim_array_close(arr);
    return 0;
}

static int adder(const char *cname) {
    shmprim_value *counter = NULL;
    CHECK(shmprim_value_open(cname, SHMPRIM_TYPE_I64, &counter));
    int64_t one = 1;
    for (int i = 0; i < 1000; i++) CHECK(shmprim_value_fetch_add(counter, &one, NULL, sizeof one));
    shmprim_value_close(counter);
    return 0;
}

int main(void) {
    char vname[64], aname[64], cname[64];
    snprintf(vname, sizeof vname, "shmprim-example-num-%d", (int)getpid());
    snprintf(aname, sizeof aname, "shmprim-example-arr-%d", (int)getpid());
    snprintf(cname, sizeof cname, "shmprim-example-ctr-%d", (int)getpid());

    shmprim_value *num = NULL, *counter = NULL;
    shmprim_array *arr = NULL;
    double zero = 0.0;
    CHECK(shmprim_value_create(vname, SHMPRIM_TYPE_F64, &zero, NULL, &num));
    CHECK(shmprim_value_create(cname, SHMPRIM_TYPE_I64, NULL, NULL, &counter));
    CHECK(shmprim_array_create(aname, SHMPRIM_TYPE_I32, 10, NULL, &arr));
    int32_t init[10];
    for (int i = 0; i < 10; i++) init[i] = i;
    CHECK(shmprim_array_write(arr, 0, init, 10));

    pid_t pids[5];
    pids[0] = fork();
    if (pids[0] == 0) _exit(child(vname, aname));
    for (int i = 1; i < 5; i++) {
        pids[i] = fork();
        if (pids[i] == 0) _exit(adder(cname));
    }
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }

    double got = 0;
    int64_t total = 0;
    int32_t a[10];
    CHECK(shmprim_value_get(num, &got, sizeof got));
    CHECK(shmprim_value_get(counter, &total, sizeof total));
    CHECK(shmprim_array_read(arr, 0, a, 10));
    ok = ok && got == 3.1415927 && total == 4000 && shmprim_array_len(arr) == 10;
    for (int i = 0; i < 10; i++) ok = ok && a[i] == -i;
    /* Out of range is a status, not an overrun. */
    ok = ok && shmprim_array_read(arr, 8, a, 3) == SHMPRIM_INDEX_OUT_OF_RANGE;

    printf("value_array: %.7f [", got);
    for (int i = 0; i < 10; i++) printf("%s%d", i ? ", " : "", a[i]);
    printf("] counter %lld %s\n", (long long)total, ok ? "ok" : "WRONG");

    shmprim_value_close(num);
    shmprim_value_close(counter);
    shmprim_array_close(arr);
    shmprim_value_unlink(vname);
    shmprim_value_unlink(cname);
    shmprim_array_unlink(aname);
    return ok ? 0 : 1;
}
