/*
 * Exercises memlink.h from C, errors included: every call's code, the
 * messages, NULL and bad arguments, regions and views, mutex / semaphore /
 * event with timeouts, list / inspect / reap, publish/subscribe. Prints
 * each failed check and exits 1 if any failed.
 */
#include <stdio.h>
#include <string.h>

#ifdef _WIN32
#include <process.h>
#define getpid _getpid
#else
#include <unistd.h>
#endif

#include "memlink.h"

static int checks = 0;
static int failures = 0;

#define EXPECT(call, code) expect_code((call), (code), #call, __LINE__)
#define CHECK(cond) check((cond), #cond, __LINE__)

static void check(int ok, const char *what, int line) {
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "api_test.c:%d: check failed: %s\n", line, what);
    }
}

static void expect_code(MemlinkError got, MemlinkError want, const char *what, int line) {
    checks++;
    if (got != want) {
        failures++;
        fprintf(stderr, "api_test.c:%d: %s returned %d (%s), expected %d (%s); last error: %s\n", line,
                what, (int)got, memlink_error_name((int)got), (int)want, memlink_error_name((int)want),
                memlink_last_error());
    } else if (want != MEMLINK_ERROR_OK && memlink_last_error()[0] == '\0') {
        failures++;
        fprintf(stderr, "api_test.c:%d: %s failed without a message\n", line, what);
    }
}

static char names[8][64];

static const char *name(int i, const char *what) {
    snprintf(names[i], sizeof names[i], "memlink-c-test-%s-%d", what, (int)getpid());
    return names[i];
}

static void regions(void) {
    const char *n = name(0, "region");
    MemlinkRegion *region = NULL, *reader = NULL, *other = NULL;
    MemlinkView *view = NULL;

    /* Missing objects, names, NULLs, bad sizes. */
    other = (MemlinkRegion *)&checks; /* a failed call must set it to NULL */
    EXPECT(memlink_region_open(n, false, &other), MEMLINK_ERROR_NOT_FOUND);
    CHECK(other == NULL);
    CHECK(strstr(memlink_last_error(), n) != NULL);
    CHECK(strstr(memlink_last_error(), "not found") != NULL);
    EXPECT(memlink_region_open(NULL, false, &other), MEMLINK_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(memlink_last_error(), "name") != NULL);
    EXPECT(memlink_region_open(n, false, NULL), MEMLINK_ERROR_INVALID_ARGUMENT);
    /* Opens take any name the OS accepts (foreign objects may have
       spaces); an empty name is refused everywhere. */
    EXPECT(memlink_region_open("bad name with spaces", false, &other), MEMLINK_ERROR_NOT_FOUND);
    EXPECT(memlink_region_open("", false, &other), MEMLINK_ERROR_INVALID_NAME);
    EXPECT(memlink_region_open("\xff\xfe", false, &other), MEMLINK_ERROR_INVALID_NAME);
    EXPECT(memlink_region_create(n, 0, NULL, &other), MEMLINK_ERROR_INVALID_ARGUMENT);

    EXPECT(memlink_region_create(n, 4096, NULL, &region), MEMLINK_ERROR_OK);
    EXPECT(memlink_region_create(n, 4096, NULL, &other), MEMLINK_ERROR_ALREADY_EXISTS);
    uint64_t size = 0;
    EXPECT(memlink_region_size(region, &size), MEMLINK_ERROR_OK);
    CHECK(size == 4096);
    EXPECT(memlink_region_size(NULL, &size), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_region_size(region, NULL), MEMLINK_ERROR_INVALID_ARGUMENT);

    /* A view at an offset, written; seen by a read-only opener. */
    uint8_t *w = NULL;
    size_t len = 0;
    EXPECT(memlink_region_map(region, 100, 16, true, &view), MEMLINK_ERROR_OK);
    EXPECT(memlink_view_data_mut(view, &w, &len), MEMLINK_ERROR_OK);
    CHECK(len == 16);
    memcpy(w, "hello", 6);
    EXPECT(memlink_view_close(view), MEMLINK_ERROR_OK);

    bool created = true;
    EXPECT(memlink_region_create_or_open(n, 8192, NULL, &other, &created), MEMLINK_ERROR_OK);
    CHECK(!created);
    EXPECT(memlink_region_size(other, &size), MEMLINK_ERROR_OK);
    CHECK(size == 4096);
    EXPECT(memlink_region_close(other), MEMLINK_ERROR_OK);

    EXPECT(memlink_region_open(n, false, &reader), MEMLINK_ERROR_OK);
    EXPECT(memlink_region_map(reader, 0, 0, true, &view), MEMLINK_ERROR_READ_ONLY);
    CHECK(view == NULL);
    EXPECT(memlink_region_map(reader, 4000, 200, false, &view), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_region_map(reader, UINT64_MAX, 2, false, &view), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_region_map(reader, 0, 0, false, &view), MEMLINK_ERROR_OK);
    const uint8_t *r = NULL;
    EXPECT(memlink_view_data(view, &r, &len), MEMLINK_ERROR_OK);
    CHECK(len == 4096);
    CHECK(memcmp(r + 100, "hello", 6) == 0);
    EXPECT(memlink_view_data_mut(view, &w, &len), MEMLINK_ERROR_READ_ONLY);
    CHECK(w == NULL);
    EXPECT(memlink_view_data(NULL, &r, &len), MEMLINK_ERROR_INVALID_ARGUMENT);

    /* The view outlives the handles; the name goes with the last handle. */
    EXPECT(memlink_region_close(reader), MEMLINK_ERROR_OK);
    EXPECT(memlink_region_close(region), MEMLINK_ERROR_OK);
    CHECK(memcmp(r + 100, "hello", 6) == 0);
    EXPECT(memlink_view_close(view), MEMLINK_ERROR_OK);
    EXPECT(memlink_region_open(n, false, &other), MEMLINK_ERROR_NOT_FOUND);

    /* Closing NULL does nothing. */
    EXPECT(memlink_region_close(NULL), MEMLINK_ERROR_OK);
    EXPECT(memlink_view_close(NULL), MEMLINK_ERROR_OK);
}

static void sync_objects(void) {
    const char *m = name(1, "mutex"), *s = name(2, "sem"), *e = name(3, "event");
    MemlinkMutex *mutex = NULL, *mutex2 = NULL;
    MemlinkSemaphore *sem = NULL;
    MemlinkEvent *event = NULL, *event2 = NULL;
    bool abandoned = true, created = false;

    EXPECT(memlink_mutex_open(m, &mutex), MEMLINK_ERROR_NOT_FOUND);
    EXPECT(memlink_mutex_create_or_open(m, &mutex, &created), MEMLINK_ERROR_OK);
    CHECK(created);
    EXPECT(memlink_mutex_open(m, &mutex2), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_unlock(mutex), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_mutex_lock(mutex, MEMLINK_WAIT_FOREVER, &abandoned), MEMLINK_ERROR_OK);
    CHECK(!abandoned);
#ifndef _WIN32
    /* Linux mutexes are not reentrant (Windows' are). */
    EXPECT(memlink_mutex_lock(mutex2, 0, NULL), MEMLINK_ERROR_WOULD_DEADLOCK);
#endif
    EXPECT(memlink_mutex_unlock(mutex), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_lock(mutex2, 100, NULL), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_unlock(mutex2), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_lock(NULL, 0, NULL), MEMLINK_ERROR_INVALID_ARGUMENT);
    /* Closing a handle that holds the lock unlocks it. */
    EXPECT(memlink_mutex_lock(mutex2, 0, NULL), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_close(mutex2), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_lock(mutex, 0, NULL), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_unlock(mutex), MEMLINK_ERROR_OK);
    /* Persistent: outlives its handles until removed (POSIX only). */
    const char *p = name(6, "persistent");
    MemlinkSyncOptions persistent = {0, true};
#ifdef _WIN32
    EXPECT(memlink_mutex_create(p, &persistent, &mutex2), MEMLINK_ERROR_UNSUPPORTED);
#else
    EXPECT(memlink_mutex_create(p, &persistent, &mutex2), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_close(mutex2), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_open(p, &mutex2), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_close(mutex2), MEMLINK_ERROR_OK);
    EXPECT(memlink_remove(p), MEMLINK_ERROR_OK);
    EXPECT(memlink_mutex_open(p, &mutex2), MEMLINK_ERROR_NOT_FOUND);
#endif
    EXPECT(memlink_mutex_create(m, NULL, &mutex2), MEMLINK_ERROR_ALREADY_EXISTS);
    /* A region cannot be opened under a mutex's name. */
    MemlinkRegion *region = NULL;
    EXPECT(memlink_region_open(m, false, &region), MEMLINK_ERROR_WRONG_KIND);
    EXPECT(memlink_mutex_close(mutex), MEMLINK_ERROR_OK);

    uint32_t previous = 99;
    EXPECT(memlink_semaphore_create(s, 1, 2, NULL, &sem), MEMLINK_ERROR_OK);
    EXPECT(memlink_semaphore_wait(sem, 0), MEMLINK_ERROR_OK);
    EXPECT(memlink_semaphore_wait(sem, 0), MEMLINK_ERROR_TIMEOUT);
    EXPECT(memlink_semaphore_wait(sem, 20), MEMLINK_ERROR_TIMEOUT);
    CHECK(strstr(memlink_last_error(), s) != NULL);
    EXPECT(memlink_semaphore_release(sem, 2, &previous), MEMLINK_ERROR_OK);
    CHECK(previous == 0);
    EXPECT(memlink_semaphore_release(sem, 1, NULL), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_semaphore_wait(sem, MEMLINK_WAIT_FOREVER), MEMLINK_ERROR_OK);
    EXPECT(memlink_semaphore_close(sem), MEMLINK_ERROR_OK);

    MemlinkSyncOptions group = {0640, false};
    EXPECT(memlink_event_create(e, true, false, &group, &event), MEMLINK_ERROR_OK);
#ifndef _WIN32
    MemlinkObjectList *list = NULL;
    MemlinkObjectInfo info;
    EXPECT(memlink_inspect(e, &list), MEMLINK_ERROR_OK);
    EXPECT(memlink_object_list_get(list, 0, &info), MEMLINK_ERROR_OK);
    CHECK(info.kind == MEMLINK_OBJECT_KIND_EVENT);
    CHECK(info.has_mode && (info.mode & 0777) == 0640);
    EXPECT(memlink_object_list_free(list), MEMLINK_ERROR_OK);
#endif
    EXPECT(memlink_event_wait(event, 0), MEMLINK_ERROR_TIMEOUT);
    EXPECT(memlink_event_create_or_open(e, false, true, &event2, &created), MEMLINK_ERROR_OK);
    CHECK(!created);
    EXPECT(memlink_event_set(event2), MEMLINK_ERROR_OK);
    /* Manual reset: stays set for every waiter. */
    EXPECT(memlink_event_wait(event, 0), MEMLINK_ERROR_OK);
    EXPECT(memlink_event_wait(event, 10), MEMLINK_ERROR_OK);
    EXPECT(memlink_event_reset(event), MEMLINK_ERROR_OK);
    EXPECT(memlink_event_wait(event2, 10), MEMLINK_ERROR_TIMEOUT);
    EXPECT(memlink_event_set(NULL), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_event_close(event2), MEMLINK_ERROR_OK);
    EXPECT(memlink_event_close(event), MEMLINK_ERROR_OK);
}

static void objects(void) {
    const char *n = name(4, "listed");
    MemlinkRegion *region = NULL;
    MemlinkObjectList *list = NULL;
    MemlinkObjectInfo info;
    size_t len = 0;
    EXPECT(memlink_region_create(n, 8192, NULL, &region), MEMLINK_ERROR_OK);
    EXPECT(memlink_inspect(n, &list), MEMLINK_ERROR_OK);
    EXPECT(memlink_object_list_len(list, &len), MEMLINK_ERROR_OK);
    CHECK(len == 1);
    EXPECT(memlink_object_list_get(list, 0, &info), MEMLINK_ERROR_OK);
    CHECK(strcmp(info.name, n) == 0);
    CHECK(info.kind == MEMLINK_OBJECT_KIND_REGION);
    CHECK(info.size == 8192);
    CHECK(info.state == MEMLINK_OBJECT_STATE_ALIVE);
    CHECK(!info.persistent);
    EXPECT(memlink_object_list_get(list, 1, &info), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_object_list_free(list), MEMLINK_ERROR_OK);

    MemlinkError listed = memlink_list(&list);
#ifdef _WIN32
    CHECK(listed == MEMLINK_ERROR_UNSUPPORTED || listed == MEMLINK_ERROR_OK);
#else
    EXPECT(listed, MEMLINK_ERROR_OK);
#endif
    if (listed == MEMLINK_ERROR_OK) {
        int found = 0;
        EXPECT(memlink_object_list_len(list, &len), MEMLINK_ERROR_OK);
        for (size_t i = 0; i < len; i++) {
            EXPECT(memlink_object_list_get(list, i, &info), MEMLINK_ERROR_OK);
            found += strcmp(info.name, n) == 0;
        }
        CHECK(found == 1);
        EXPECT(memlink_object_list_free(list), MEMLINK_ERROR_OK);
    }
    /* Reaping never takes a live object. */
    MemlinkError reaped = memlink_reap(NULL);
    CHECK(reaped == MEMLINK_ERROR_OK || reaped == MEMLINK_ERROR_UNSUPPORTED);
    EXPECT(memlink_inspect(n, &list), MEMLINK_ERROR_OK);
    EXPECT(memlink_object_list_free(list), MEMLINK_ERROR_OK);
    EXPECT(memlink_remove(NULL), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_region_close(region), MEMLINK_ERROR_OK);
    EXPECT(memlink_inspect(n, &list), MEMLINK_ERROR_NOT_FOUND);
    CHECK(list == NULL);
}

static void pubsub(void) {
    const char *n = name(5, "service");
    MemlinkServiceOptions options;
    memset(&options, 0, sizeof options);
    options.capacity = 4;
    options.max_payload = 64;
    MemlinkPublisher *publisher = NULL;
    MemlinkSubscriber *subscriber = NULL, *other = NULL;
    MemlinkSample *sample = NULL, *held[3] = {NULL, NULL, NULL};
    MemlinkLoan *loan = NULL;

    EXPECT(memlink_subscriber_connect(n, &options, &subscriber), MEMLINK_ERROR_OK);
    EXPECT(memlink_publisher_connect(n, NULL, &publisher), MEMLINK_ERROR_OK);
    size_t count = 0;
    EXPECT(memlink_publisher_subscriber_count(publisher, &count), MEMLINK_ERROR_OK);
    CHECK(count == 1);
    EXPECT(memlink_subscriber_publisher_count(subscriber, &count), MEMLINK_ERROR_OK);
    CHECK(count == 1);

    EXPECT(memlink_subscriber_receive(subscriber, 0, &sample), MEMLINK_ERROR_TIMEOUT);
    CHECK(sample == NULL);
    EXPECT(memlink_subscriber_receive(subscriber, 20, &sample), MEMLINK_ERROR_TIMEOUT);

    uint8_t *w = NULL;
    size_t len = 0;
    EXPECT(memlink_publisher_loan(publisher, 65, &loan), MEMLINK_ERROR_INVALID_ARGUMENT);
    EXPECT(memlink_publisher_loan(publisher, 5, &loan), MEMLINK_ERROR_OK);
    EXPECT(memlink_loan_data(loan, &w, &len), MEMLINK_ERROR_OK);
    CHECK(len == 5);
    memcpy(w, "hello", 5);
    EXPECT(memlink_loan_send(loan, MEMLINK_WAIT_FOREVER), MEMLINK_ERROR_OK);
    EXPECT(memlink_loan_send(NULL, 0), MEMLINK_ERROR_INVALID_ARGUMENT);

    /* A discarded loan is never seen. */
    EXPECT(memlink_publisher_loan(publisher, 3, &loan), MEMLINK_ERROR_OK);
    EXPECT(memlink_loan_discard(loan), MEMLINK_ERROR_OK);
    EXPECT(memlink_publisher_send_copy(publisher, (const uint8_t *)"world", 5), MEMLINK_ERROR_OK);
    EXPECT(memlink_publisher_send_copy(publisher, NULL, 5), MEMLINK_ERROR_INVALID_ARGUMENT);

    const uint8_t *r = NULL;
    uint64_t sequence = 99;
    EXPECT(memlink_subscriber_receive(subscriber, 1000, &held[0]), MEMLINK_ERROR_OK);
    EXPECT(memlink_sample_data(held[0], &r, &len), MEMLINK_ERROR_OK);
    CHECK(len == 5 && memcmp(r, "hello", 5) == 0);
    EXPECT(memlink_sample_origin(held[0], NULL, &sequence), MEMLINK_ERROR_OK);
    CHECK(sequence == 0);
    EXPECT(memlink_subscriber_receive(subscriber, MEMLINK_WAIT_FOREVER, &held[1]), MEMLINK_ERROR_OK);
    EXPECT(memlink_sample_data(held[1], &r, &len), MEMLINK_ERROR_OK);
    CHECK(len == 5 && memcmp(r, "world", 5) == 0);
    /* The default is 2 held samples per subscriber. */
    EXPECT(memlink_publisher_send_copy(publisher, (const uint8_t *)"!", 1), MEMLINK_ERROR_OK);
    EXPECT(memlink_subscriber_receive(subscriber, 0, &held[2]), MEMLINK_ERROR_LIMIT_REACHED);
    EXPECT(memlink_sample_release(held[0]), MEMLINK_ERROR_OK);
    EXPECT(memlink_subscriber_receive(subscriber, 0, &held[2]), MEMLINK_ERROR_OK);
    EXPECT(memlink_sample_release(held[1]), MEMLINK_ERROR_OK);

    /* Settings that differ from the service's are refused. */
    options.capacity = 8;
    EXPECT(memlink_subscriber_connect(n, &options, &other), MEMLINK_ERROR_INCOMPATIBLE);
    options.capacity = 0;
    options.overflow = 7;
    EXPECT(memlink_subscriber_connect(n, &options, &other), MEMLINK_ERROR_INVALID_ARGUMENT);

    MemlinkServiceInfo info;
    EXPECT(memlink_service_inspect(n, &info), MEMLINK_ERROR_OK);
    CHECK(info.capacity == 4);
    CHECK(info.max_payload == 64);
    CHECK(info.publishers == 1 && info.subscribers == 1);
    CHECK(info.overflow == MEMLINK_OVERFLOW_OVERWRITE);

    /* A subscriber closed with a sample held lives until it is released. */
    EXPECT(memlink_subscriber_close(subscriber), MEMLINK_ERROR_OK);
    EXPECT(memlink_sample_data(held[2], &r, &len), MEMLINK_ERROR_OK);
    CHECK(len == 1 && r[0] == '!');
    EXPECT(memlink_sample_release(held[2]), MEMLINK_ERROR_OK);
    EXPECT(memlink_publisher_close(publisher), MEMLINK_ERROR_OK);
    EXPECT(memlink_service_inspect(n, &info), MEMLINK_ERROR_NOT_FOUND);
}

int main(void) {
    CHECK(strlen(memlink_version()) > 0);
    CHECK(strcmp(memlink_error_name(MEMLINK_ERROR_NOT_FOUND), "not found") == 0);
    CHECK(strcmp(memlink_error_name(999), "unknown error code") == 0);
    regions();
    sync_objects();
    objects();
    pubsub();
    if (failures) {
        fprintf(stderr, "api_test: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("api_test: all %d checks passed\n", checks);
    return 0;
}
