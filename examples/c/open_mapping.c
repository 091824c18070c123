/*
 * The seeds' process 2 ("Open mapping and get Data"), in C against
 * memlink.h: opens "MMFSharedData" (or argv[1]) read-only, as the second
 * seed's client does, maps a view of the whole region and prints up to 256
 * characters of its text (up to the first NUL).
 *
 *   open_mapping [NAME]
 */
#include <stdio.h>
#include <string.h>

#include "memlink.h"

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "MMFSharedData";
    MemlinkRegion *region = NULL;
    if (memlink_region_open(name, false, &region) != MEMLINK_ERROR_OK) {
        fprintf(stderr, "cannot open the mapping: %s\n", memlink_last_error());
        return 1;
    }
    MemlinkView *view = NULL;
    const uint8_t *data = NULL;
    size_t len = 0;
    if (memlink_region_map(region, 0, 0, false, &view) != MEMLINK_ERROR_OK ||
        memlink_view_data(view, &data, &len) != MEMLINK_ERROR_OK) {
        fprintf(stderr, "cannot map a view of the mapping: %s\n", memlink_last_error());
        memlink_region_close(region);
        return 1;
    }
    char text[257];
    size_t n = len < 256 ? len : 256;
    const uint8_t *nul = memchr(data, 0, n);
    if (nul != NULL) {
        n = (size_t)(nul - data);
    }
    memcpy(text, data, n);
    text[n] = '\0';
    printf("%s\n", text);
    memlink_view_close(view);
    memlink_region_close(region);
    return 0;
}
