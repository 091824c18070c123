/*
 * The C side of a C <-> Rust exchange (driven by the Rust test
 * crates/memlink-ffi/tests/c_programs.rs), through objects the Rust side
 * made: publishes "waiting" on SERVICE, locks MUTEX (which the Rust side
 * holds until it has written "from Rust" into REGION), checks that text,
 * writes "from C", unlocks, publishes COUNT samples "sample <i>" and sets
 * EVENT. Every wait has a deadline.
 *
 *   c_publisher SERVICE REGION MUTEX EVENT COUNT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memlink.h"

#define DEADLINE_MS 20000

static int fail(const char *what) {
    fprintf(stderr, "c_publisher: %s: %s\n", what, memlink_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: c_publisher SERVICE REGION MUTEX EVENT COUNT\n");
        return 2;
    }
    int count = atoi(argv[5]);
    MemlinkPublisher *publisher = NULL;
    MemlinkRegion *region = NULL;
    MemlinkMutex *mutex = NULL;
    MemlinkEvent *event = NULL;
    MemlinkView *view = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    if (memlink_publisher_connect(argv[1], NULL, &publisher) != MEMLINK_ERROR_OK)
        return fail("connect");
    if (memlink_region_open(argv[2], true, &region) != MEMLINK_ERROR_OK) return fail("open region");
    if (memlink_region_map(region, 0, 0, true, &view) != MEMLINK_ERROR_OK ||
        memlink_view_data_mut(view, &data, &len) != MEMLINK_ERROR_OK)
        return fail("map");
    if (memlink_mutex_open(argv[3], &mutex) != MEMLINK_ERROR_OK) return fail("open mutex");
    if (memlink_event_open(argv[4], &event) != MEMLINK_ERROR_OK) return fail("open event");

    static const char waiting[] = "waiting";
    if (memlink_publisher_send_copy(publisher, (const uint8_t *)waiting, strlen(waiting)) !=
        MEMLINK_ERROR_OK)
        return fail("send");

    bool abandoned = true;
    if (memlink_mutex_lock(mutex, DEADLINE_MS, &abandoned) != MEMLINK_ERROR_OK) return fail("lock");
    if (abandoned) {
        fprintf(stderr, "c_publisher: the mutex says its holder died\n");
        return 1;
    }
    if (strcmp((const char *)data, "from Rust") != 0) {
        fprintf(stderr, "c_publisher: the region holds \"%.32s\", not \"from Rust\"\n", (const char *)data);
        return 1;
    }
    memcpy(data, "from C", sizeof "from C");
    if (memlink_mutex_unlock(mutex) != MEMLINK_ERROR_OK) return fail("unlock");

    for (int i = 0; i < count; i++) {
        MemlinkLoan *loan = NULL;
        uint8_t *payload = NULL;
        char text[32];
        int n = snprintf(text, sizeof text, "sample %d", i);
        if (memlink_publisher_loan(publisher, (size_t)n, &loan) != MEMLINK_ERROR_OK) return fail("loan");
        if (memlink_loan_data(loan, &payload, NULL) != MEMLINK_ERROR_OK) return fail("loan data");
        memcpy(payload, text, (size_t)n);
        if (memlink_loan_send(loan, DEADLINE_MS) != MEMLINK_ERROR_OK) return fail("send");
    }
    if (memlink_event_set(event) != MEMLINK_ERROR_OK) return fail("set");

    memlink_view_close(view);
    memlink_region_close(region);
    memlink_mutex_close(mutex);
    memlink_event_close(event);
    memlink_publisher_close(publisher);
    return 0;
}
