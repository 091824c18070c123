/*
 * The C subscriber of a Rust -> C exchange (driven by
 * crates/memlink-ffi/tests/c_programs.rs): joins SERVICE whatever its
 * payload type, prints "ready", then prints COUNT samples as
 * "<sequence> <text>" lines, each received within a deadline.
 *
 *   c_subscriber SERVICE COUNT
 */
#include <stdio.h>
#include <stdlib.h>

#include "memlink.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: c_subscriber SERVICE COUNT\n");
        return 2;
    }
    int count = atoi(argv[2]);
    MemlinkSubscriber *subscriber = NULL;
    if (memlink_subscriber_connect_any(argv[1], NULL, &subscriber) != MEMLINK_ERROR_OK) {
        fprintf(stderr, "c_subscriber: connect: %s\n", memlink_last_error());
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < count; i++) {
        MemlinkSample *sample = NULL;
        const uint8_t *data = NULL;
        size_t len = 0;
        uint64_t sequence = 0;
        if (memlink_subscriber_receive(subscriber, 20000, &sample) != MEMLINK_ERROR_OK) {
            fprintf(stderr, "c_subscriber: receive: %s\n", memlink_last_error());
            return 1;
        }
        memlink_sample_data(sample, &data, &len);
        memlink_sample_origin(sample, NULL, &sequence);
        printf("%llu %.*s\n", (unsigned long long)sequence, (int)len, (const char *)data);
        fflush(stdout);
        memlink_sample_release(sample);
    }
    memlink_subscriber_close(subscriber);
    return 0;
}
