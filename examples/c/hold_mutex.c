/*
 * Locks the mutex NAME, says "locked", and holds it until its standard
 * input ends; the test kills it first, to show that a holder that dies
 * releases the lock and the next locker is told (abandoned).
 *
 *   hold_mutex NAME
 */
#include <stdio.h>

#include "memlink.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: hold_mutex NAME\n");
        return 2;
    }
    MemlinkMutex *mutex = NULL;
    if (memlink_mutex_open(argv[1], &mutex) != MEMLINK_ERROR_OK ||
        memlink_mutex_lock(mutex, 20000, NULL) != MEMLINK_ERROR_OK) {
        fprintf(stderr, "hold_mutex: %s\n", memlink_last_error());
        return 1;
    }
    printf("locked\n");
    fflush(stdout);
    char line[16];
    (void)fgets(line, sizeof line, stdin);
    memlink_mutex_unlock(mutex);
    memlink_mutex_close(mutex);
    return 0;
}
