/*
 * The seeds' process 1 ("Create mapping of Data"), in C against memlink.h:
 * creates the 4 KiB region "MMFSharedData" (or argv[1]), writes a text
 * with its terminating NUL (argv[2], or a default), then holds the region
 * until its standard input ends (a line or end-of-file), because the name
 * lives only while some process holds a handle to it.
 *
 *   create_mapping [NAME [TEXT]]
 */
#include <stdio.h>
#include <string.h>

#include "memlink.h"

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "MMFSharedData";
    const char *text = argc > 2 ? argv[2] : "Some data from process 1";
    MemlinkRegion *region = NULL;
    MemlinkError err = memlink_region_create(name, 4096, NULL, &region);
    if (err == MEMLINK_ERROR_ALREADY_EXISTS) {
        fprintf(stderr, "a mapping of that name already exists: %s\n", memlink_last_error());
        return 1;
    }
    if (err != MEMLINK_ERROR_OK) {
        fprintf(stderr, "cannot create the mapping: %s\n", memlink_last_error());
        return 1;
    }
    MemlinkView *view = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    if (memlink_region_map(region, 0, 0, true, &view) != MEMLINK_ERROR_OK ||
        memlink_view_data_mut(view, &data, &len) != MEMLINK_ERROR_OK) {
        fprintf(stderr, "cannot map a view of the mapping: %s\n", memlink_last_error());
        memlink_region_close(region);
        return 1;
    }
    size_t n = strlen(text) + 1;
    if (n > len) {
        fprintf(stderr, "the text is longer than the mapping (%zu > %zu bytes)\n", n, len);
        memlink_view_close(view);
        memlink_region_close(region);
        return 1;
    }
    memset(data, 0, len);
    memcpy(data, text, n);
    /* The view goes; the handle stays, or the name would go with it. */
    memlink_view_close(view);
    printf("created %s (4096 bytes) with \"%s\"; holding it until stdin ends\n", name, text);
    fflush(stdout);

    char line[64];
    (void)fgets(line, sizeof line, stdin);

    /* "Close mapping of Data": with the last handle, the name is gone. */
    memlink_region_close(region);
    printf("closed %s\n", name);
    return 0;
}
