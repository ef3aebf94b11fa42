/* Four threads hammering one store: shared store and bucket handles, per-thread
 * handles, batches, cursors, handle churn, then a store closed underneath running
 * threads (which must see STATE_CLOSED, never a crash). Run by `make test` under
 * valgrind and with ASan + UBSan. */
#include "check.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 150

static char base_dir[] = "/tmp/libstate-c-threads-XXXXXX";
static char store_dir[512];
static state_store *store;
static state_bucket *shared_bucket;
static volatile int stop_flag;

struct worker {
    int id;
    int failures;
    long ops;
    int saw_closed;
};

#define WCHECK(w, cond)                                                                \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            (w)->failures++;                                                           \
            fprintf(stderr, "thread %d: %s:%d: %s failed (%s)\n", (w)->id, __FILE__,    \
                    __LINE__, #cond, state_last_error_message());                      \
        }                                                                              \
    } while (0)

static void *hammer(void *arg) {
    struct worker *w = arg;
    state_bucket *own, *mine;
    state_store *again;
    state_cursor *cur;
    state_entries list = {.struct_size = sizeof list};
    state_entry e;
    char name[32], key[64], val[64], keys_buf[5][64];
    const char *keys[5];
    state_kv kv[5];
    uint8_t *v;
    size_t n;
    int r, i;
    bool existed;

    snprintf(name, sizeof name, "worker%d", w->id);
    WCHECK(w, state_bucket_open(store, name, &own) == STATE_OK);
    for (r = 0; r < ROUNDS; r++) {
        /* Own keys in the shared bucket: a thread reads back what it wrote. */
        snprintf(key, sizeof key, "t%d/k%04d", w->id, r);
        snprintf(val, sizeof val, "value-%d-%d", w->id, r);
        WCHECK(w, state_set(shared_bucket, key, val, strlen(val)) == STATE_OK);
        WCHECK(w, state_get(shared_bucket, key, &v, &n) == STATE_OK);
        WCHECK(w, n == strlen(val) && memcmp(v, val, n) == 0);
        state_free(v);

        /* A batch in the thread's own bucket, read back with get_multiple. */
        for (i = 0; i < 5; i++) {
            snprintf(keys_buf[i], sizeof keys_buf[i], "b%04d-%d", r, i);
            keys[i] = keys_buf[i];
            kv[i].key = keys_buf[i];
            kv[i].value = val;
            kv[i].value_len = strlen(val);
        }
        WCHECK(w, state_set_multiple(own, kv, 5) == STATE_OK);
        WCHECK(w, state_get_multiple(own, keys, 5, &list) == STATE_OK);
        WCHECK(w, list.len == 5);
        state_entries_free(&list);
        WCHECK(w, state_delete(own, keys[4], &existed) == STATE_OK && existed);

        /* A cursor over the shared bucket while the others write to it. */
        if (r % 10 == 0) {
            WCHECK(w, state_cursor_open(shared_bucket, &cur) == STATE_OK);
            snprintf(key, sizeof key, "t%d/", w->id);
            if (state_cursor_seek(cur, key, &e) == STATE_OK) {
                WCHECK(w, strncmp(e.key, key, strlen(key)) == 0);
                state_entry_free(&e);
            }
            WCHECK(w, state_cursor_next_n(cur, 20, &list) == STATE_OK);
            for (i = 1; i < (int)list.len; i++) {
                WCHECK(w, strcmp(STATE_ENTRY_AT(&list, i - 1)->key, STATE_ENTRY_AT(&list, i)->key) < 0);
            }
            state_entries_free(&list);
            WCHECK(w, state_cursor_close(cur) == STATE_OK);
        }

        /* Handle churn: more handles on the same store and bucket, then closed. */
        if (r % 25 == 0) {
            WCHECK(w, state_open(store_dir, NULL, &again) == STATE_OK);
            WCHECK(w, state_bucket_open(again, name, &mine) == STATE_OK);
            WCHECK(w, state_get(mine, keys[0], &v, &n) == STATE_OK);
            state_free(v);
            WCHECK(w, state_bucket_close(mine) == STATE_OK);
            WCHECK(w, state_close(again) == STATE_OK);
            WCHECK(w, state_close(again) == STATE_CLOSED);
        }
        w->ops += 8;
    }
    WCHECK(w, state_bucket_close(own) == STATE_OK);
    return NULL;
}

/* Phase two: keep using the store until it is closed underneath us. */
static void *until_closed(void *arg) {
    struct worker *w = arg;
    char key[32];
    uint8_t *v;
    size_t n;
    long i;
    snprintf(key, sizeof key, "closing/%d", w->id);
    /* The cap only keeps a broken build from spinning forever; the store is closed
     * after 20 ms. */
    for (i = 0; i < 50000000 && !w->saw_closed; i++) {
        state_status a = state_set(shared_bucket, key, "x", 1);
        state_status b = state_get(shared_bucket, key, &v, &n);
        if (b == STATE_OK) {
            state_free(v);
        }
        WCHECK(w, a == STATE_OK || a == STATE_CLOSED);
        WCHECK(w, b == STATE_OK || b == STATE_NOT_FOUND || b == STATE_CLOSED);
        if (a == STATE_CLOSED || b == STATE_CLOSED) {
            w->saw_closed = 1;
        }
        if (stop_flag && i > 0 && !w->saw_closed && state_flush(store) == STATE_CLOSED) {
            w->saw_closed = 1;
        }
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    struct worker w[THREADS];
    state_info info = {.struct_size = sizeof info};
    int i, failures = 0;
    long ops = 0;

    if (test_dir_make(base_dir) != 0) {
        return 2;
    }
    snprintf(store_dir, sizeof store_dir, "%s/store", base_dir);
    CHECK_OK(state_open(store_dir, NULL, &store));
    CHECK_OK(state_bucket_open(store, "shared", &shared_bucket));

    for (i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        CHECK(pthread_create(&t[i], NULL, hammer, &w[i]) == 0);
    }
    for (i = 0; i < THREADS; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        failures += w[i].failures;
        ops += w[i].ops;
    }
    CHECK(failures == 0);

    /* Every write of every thread is there: ROUNDS shared keys and 4*ROUNDS batch
     * keys per thread. */
    CHECK_OK(state_store_info(store, &info));
    CHECK(info.records == (uint64_t)THREADS * ROUNDS * 5);
    CHECK(info.buckets == THREADS + 1);
    state_info_free(&info);

    for (i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        CHECK(pthread_create(&t[i], NULL, until_closed, &w[i]) == 0);
    }
    usleep(20000);
    stop_flag = 1;
    CHECK_OK(state_close(store));
    for (i = 0; i < THREADS; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(w[i].failures == 0);
        CHECK(w[i].saw_closed);
    }
    CHECK_OK(state_bucket_close(shared_bucket));
    CHECK_RC(state_bucket_close(shared_bucket), STATE_CLOSED);

    fprintf(stderr, "test_threads: %d threads, %ld operations in phase one\n", THREADS, ops);
    rm_tree(base_dir);
    return check_summary("test_threads");
}
