/*
 * A C program looking inside its own segment, as `shmprim stat --json` does:
 * the JSON names the kind and counts the live participants; a buffer that is
 * too small is refused with the size needed.  Prints "inspect_self: ok".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmprim.h"

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "shmprim-example-inspect-%d", (int)getpid());
    shmprim_segment *seg = NULL;
    if (shmprim_segment_create(name, 100, 0, &seg) != SHMPRIM_OK) {
        fprintf(stderr, "create: %s\n", shmprim_last_error_message());
        return 1;
    }
    size_t needed = 0;
    char tiny[4];
    int ok = shmprim_inspect_json(name, tiny, sizeof tiny, &needed) == SHMPRIM_BUFFER_TOO_SMALL;
    ok = ok && needed > sizeof tiny;
    char *json = malloc(needed);
    ok = ok && json != NULL && shmprim_inspect_json(name, json, needed, &needed) == SHMPRIM_OK;
    ok = ok && strstr(json, "\"kind\":\"raw\"") != NULL && strstr(json, "\"live_participants\":1") != NULL;
    uint32_t live = 0;
    ok = ok && shmprim_inspect_live_participants(name, &live) == SHMPRIM_OK && live == 1;
    ok = ok && shmprim_inspect_json("no-such-segment-anywhere", json, needed, NULL) == SHMPRIM_NOT_FOUND;
    free(json);
    shmprim_segment_close(seg);
    shmprim_segment_unlink(name);
    printf("inspect_self: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
