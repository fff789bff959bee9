/*
 * The C half of a cross-language test (tests/c_examples.rs): C opens a Value
 * and an Array that a Rust process created and changes them.
 *
 *   xlang_value_peer F64_VALUE I32_ARRAY STRUCT_VALUE
 *
 * Opens F64_VALUE (a Rust Value<f64>) whatever its type and doubles it, opens
 * I32_ARRAY (a Rust Array<i32>) and negates every element, and checks that
 * STRUCT_VALUE (a Rust Value of a struct) is refused as SHMPRIM_INCOMPATIBLE:
 * C has no type code for it.  Prints "xlang_value_peer: ok".
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmprim.h"

static int fail(const char *what, shmprim_status st) {
    fprintf(stderr, "xlang_value_peer: %s: %s (%s)\n", what, shmprim_status_str(st), shmprim_last_error_message());
    return 1;
}

static void twice(void *value, void *ctx) {
    (void)ctx;
    double d;
    memcpy(&d, value, sizeof d);
    d *= 2;
    memcpy(value, &d, sizeof d);
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    shmprim_value *v = NULL;
    shmprim_status st = shmprim_value_open(argv[1], SHMPRIM_TYPE_ANY, &v);
    if (st != SHMPRIM_OK) return fail("value open", st);
    if (shmprim_value_type(v) != SHMPRIM_TYPE_F64) return fail("value type", SHMPRIM_INCOMPATIBLE);
    st = shmprim_value_update(v, twice, NULL, NULL);
    if (st != SHMPRIM_OK) return fail("update", st);

    shmprim_array *a = NULL;
    st = shmprim_array_open(argv[2], SHMPRIM_TYPE_I32, &a);
    if (st != SHMPRIM_OK) return fail("array open", st);
    size_t n = shmprim_array_len(a);
    if (n != 5) return fail("array length", SHMPRIM_INCOMPATIBLE);
    int32_t elems[5];
    st = shmprim_array_read(a, 0, elems, n);
    if (st != SHMPRIM_OK) return fail("read", st);
    for (size_t i = 0; i < n; i++) elems[i] = -elems[i];
    st = shmprim_array_write(a, 0, elems, n);
    if (st != SHMPRIM_OK) return fail("write", st);

    shmprim_value *s = NULL;
    st = shmprim_value_open(argv[3], SHMPRIM_TYPE_ANY, &s);
    if (st != SHMPRIM_INCOMPATIBLE) return fail("struct value should be incompatible", st);
    shmprim_array *wrong = NULL;
    st = shmprim_array_open(argv[2], SHMPRIM_TYPE_F32, &wrong);
    if (st != SHMPRIM_INCOMPATIBLE) return fail("array of another type should be incompatible", st);

    shmprim_value_close(v);
    shmprim_array_close(a);
    printf("xlang_value_peer: ok\n");
    return 0;
}
