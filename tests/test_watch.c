/* state_watch / state_unwatch: events in commit order on a libstate thread, a lag
 * event for a stalled callback, unwatch waiting for a running callback, unwatch
 * from inside the callback, and a store closed while watched. Threads meet through
 * mutexes and condition variables, never sleeps. Run under valgrind and ASan. */
#include "check.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENTS 4096

static char base_dir[] = "/tmp/libstate-c-watch-XXXXXX";
static char store_dir[512];

struct seen {
    unsigned kind;
    int is_new;
    char key[64];
    char value[64];
    uint64_t missed;
};

/* What a callback records, and the handshakes around it. */
struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct seen events[MAX_EVENTS];
    int n;
    /* Block the callback on its first call until `release` is set. */
    int block_first, entered, release, in_callback;
    /* Unwatch from inside the callback on the first event. */
    state_watcher *self;
    state_status self_unwatch_rc;
    int self_done;
};

static void recorder_init(struct recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static void recorder_destroy(struct recorder *r) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
}

static void record(void *ctx, const state_event *ev) {
    struct recorder *r = ctx;
    state_watcher *self;
    pthread_mutex_lock(&r->mu);
    r->in_callback = 1;
    if (r->block_first && r->n == 0) {
        r->entered = 1;
        pthread_cond_broadcast(&r->cond);
        while (!r->release) pthread_cond_wait(&r->cond, &r->mu);
    }
    if (r->n < MAX_EVENTS) {
        struct seen *s = &r->events[r->n];
        s->kind = ev->kind;
        s->missed = ev->missed;
        CHECK(ev->struct_size >= sizeof *ev);
        s->is_new = ev->is_new;
        if (ev->key != NULL) snprintf(s->key, sizeof s->key, "%s", ev->key);
        if (ev->value != NULL)
            snprintf(s->value, sizeof s->value, "%.*s", (int)ev->value_len, (const char *)ev->value);
        r->n++;
    }
    r->in_callback = 0;
    self = r->self;
    r->self = NULL;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    if (self != NULL) {
        state_status rc = state_unwatch(self);
        pthread_mutex_lock(&r->mu);
        r->self_unwatch_rc = rc;
        r->self_done = 1;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->mu);
    }
}

/* Waits until the recorder holds `n` events, or one with key `key`. */
static void wait_for(struct recorder *r, int n, const char *key) {
    pthread_mutex_lock(&r->mu);
    for (;;) {
        int found = 0, i;
        if (key != NULL)
            for (i = 0; i < r->n; i++) found |= strcmp(r->events[i].key, key) == 0;
        if ((key == NULL && r->n >= n) || found) break;
        pthread_cond_wait(&r->cond, &r->mu);
    }
    pthread_mutex_unlock(&r->mu);
}

static state_store *open_store(void) {
    state_store *st = NULL;
    CHECK_OK(state_open(store_dir, NULL, &st));
    return st;
}

static void test_events_arrive_in_commit_order(void) {
    state_store *st = open_store();
    state_bucket *b, *other;
    state_watcher *w;
    struct recorder r;
    state_kv batch[2] = {{"k2", "2", 1}, {"k3", "3", 1}};
    recorder_init(&r);
    CHECK_OK(state_bucket_open(st, "alice", &b));
    CHECK_OK(state_bucket_open(st, "bob", &other));
    CHECK_OK(state_watch(b, "k", record, &r, &w));
    CHECK_OK(state_set(other, "k1", (const uint8_t *)"bob", 3));
    CHECK_OK(state_set(b, "k1", (const uint8_t *)"1", 1));
    CHECK_OK(state_set(b, "x", (const uint8_t *)"not watched", 11));
    CHECK_OK(state_set_multiple(b, batch, 2));
    CHECK_OK(state_delete(b, "k1", NULL));
    CHECK_OK(state_set(b, "k2", (const uint8_t *)"2b", 2));
    CHECK_OK(state_expire(b, "k2", 60000));
    CHECK_OK(state_persist(b, "k2", NULL));
    wait_for(&r, 7, NULL);
    CHECK_OK(state_unwatch(w));
    CHECK(r.n == 7);
    CHECK(r.events[0].kind == STATE_EVENT_SET && strcmp(r.events[0].key, "k1") == 0 &&
          strcmp(r.events[0].value, "1") == 0 && r.events[0].is_new);
    CHECK(r.events[1].kind == STATE_EVENT_SET && strcmp(r.events[1].key, "k2") == 0);
    CHECK(r.events[2].kind == STATE_EVENT_SET && strcmp(r.events[2].key, "k3") == 0);
    CHECK(r.events[3].kind == STATE_EVENT_DELETE && strcmp(r.events[3].key, "k1") == 0);
    /* An overwrite is a set of a key that is not new; deadlines have their own kinds. */
    CHECK(r.events[4].kind == STATE_EVENT_SET && !r.events[4].is_new &&
          strcmp(r.events[4].value, "2b") == 0);
    CHECK(r.events[5].kind == STATE_EVENT_EXPIRE && strcmp(r.events[5].key, "k2") == 0);
    CHECK(r.events[6].kind == STATE_EVENT_PERSIST && strcmp(r.events[6].key, "k2") == 0);
    CHECK_RC(state_unwatch(w), STATE_CLOSED);
    CHECK_RC(state_watch(b, "k", NULL, &r, &w), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_watch(b, NULL, record, &r, &w), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_watch(NULL, "", record, &r, &w), STATE_INVALID_ARGUMENT);
    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_bucket_close(other));
    CHECK_OK(state_close(st));
    recorder_destroy(&r);
}

static void test_a_stalled_callback_gets_a_lag_event(void) {
    state_store *st = open_store();
    state_bucket *b;
    state_watcher *w;
    struct recorder r;
    char key[32];
    int i, lag_at = -1;
    recorder_init(&r);
    r.block_first = 1;
    CHECK_OK(state_bucket_open(st, "lag", &b));
    CHECK_OK(state_watch(b, "", record, &r, &w));
    CHECK_OK(state_set(b, "k0", (const uint8_t *)"v", 1));
    pthread_mutex_lock(&r.mu);
    while (!r.entered) pthread_cond_wait(&r.cond, &r.mu);
    pthread_mutex_unlock(&r.mu);
    /* The callback is stuck in k0: 1024 queue, the other 476 are dropped. Writers
     * do not wait for it. */
    for (i = 1; i <= 1500; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_OK(state_set(b, key, (const uint8_t *)"v", 1));
    }
    pthread_mutex_lock(&r.mu);
    r.release = 1;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.mu);
    wait_for(&r, 1 + 1024, NULL);
    CHECK_OK(state_set(b, "end", (const uint8_t *)"v", 1));
    wait_for(&r, 0, "end");
    CHECK_OK(state_unwatch(w));
    for (i = 0; i < r.n; i++)
        if (r.events[i].kind == STATE_EVENT_LAGGED) lag_at = i;
    CHECK(lag_at == 1 + 1024);
    CHECK(lag_at >= 0 && r.events[lag_at].missed == 476);
    CHECK(r.n == 1 + 1024 + 2 && strcmp(r.events[r.n - 1].key, "end") == 0);
    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_close(st));
    recorder_destroy(&r);
}

struct unwatcher {
    state_watcher *w;
    struct recorder *r;
    state_status rc;
    int callback_running_at_return;
};

static void *unwatch_thread(void *arg) {
    struct unwatcher *u = arg;
    u->rc = state_unwatch(u->w);
    pthread_mutex_lock(&u->r->mu);
    u->callback_running_at_return = u->r->in_callback;
    pthread_mutex_unlock(&u->r->mu);
    return NULL;
}

static void test_unwatch_waits_for_a_running_callback(void) {
    state_store *st = open_store();
    state_bucket *b;
    struct recorder r;
    struct unwatcher u;
    pthread_t t;
    recorder_init(&r);
    r.block_first = 1;
    memset(&u, 0, sizeof u);
    u.r = &r;
    CHECK_OK(state_bucket_open(st, "unwatch", &b));
    CHECK_OK(state_watch(b, "", record, &r, &u.w));
    CHECK_OK(state_set(b, "a", (const uint8_t *)"1", 1));
    pthread_mutex_lock(&r.mu);
    while (!r.entered) pthread_cond_wait(&r.cond, &r.mu);
    pthread_mutex_unlock(&r.mu);
    /* Unwatch while the callback runs (or just after it was released: either way,
     * when unwatch returns the callback is not running, and nothing written after
     * is delivered). */
    CHECK(pthread_create(&t, NULL, unwatch_thread, &u) == 0);
    pthread_mutex_lock(&r.mu);
    r.release = 1;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.mu);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(u.rc == STATE_OK);
    CHECK(u.callback_running_at_return == 0);
    CHECK_OK(state_set(b, "c", (const uint8_t *)"3", 1));
    CHECK(r.n == 1);
    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_close(st));
    recorder_destroy(&r);
}

static void test_unwatch_from_inside_the_callback(void) {
    state_store *st = open_store();
    state_bucket *b;
    state_watcher *w;
    struct recorder r;
    recorder_init(&r);
    CHECK_OK(state_bucket_open(st, "self", &b));
    pthread_mutex_lock(&r.mu);
    CHECK_OK(state_watch(b, "", record, &r, &w));
    r.self = w;
    pthread_mutex_unlock(&r.mu);
    CHECK_OK(state_set(b, "a", (const uint8_t *)"1", 1));
    pthread_mutex_lock(&r.mu);
    while (!r.self_done) pthread_cond_wait(&r.cond, &r.mu);
    pthread_mutex_unlock(&r.mu);
    /* The callback released its own handle, at once, without deadlocking. */
    CHECK(r.self_unwatch_rc == STATE_OK);
    CHECK_RC(state_unwatch(w), STATE_CLOSED);
    CHECK_OK(state_set(b, "b", (const uint8_t *)"2", 1));
    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_close(st));
    CHECK(r.n == 1);
    recorder_destroy(&r);
}

static void test_closing_the_store_ends_the_watch(void) {
    state_store *st = open_store();
    state_bucket *b;
    state_watcher *w;
    struct recorder r;
    recorder_init(&r);
    CHECK_OK(state_bucket_open(st, "close", &b));
    CHECK_OK(state_watch(b, "", record, &r, &w));
    CHECK_OK(state_set(b, "a", (const uint8_t *)"1", 1));
    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_close(st));
    /* The event queued before the close is still delivered. */
    wait_for(&r, 1, NULL);
    CHECK_OK(state_unwatch(w));
    CHECK(r.n == 1);
    recorder_destroy(&r);
}

int main(void) {
    if (test_dir_make(base_dir) != 0) {
        return 2;
    }
    snprintf(store_dir, sizeof store_dir, "%s/store", base_dir);
    RUN(test_events_arrive_in_commit_order);
    RUN(test_a_stalled_callback_gets_a_lag_event);
    RUN(test_unwatch_waits_for_a_running_callback);
    RUN(test_unwatch_from_inside_the_callback);
    RUN(test_closing_the_store_ends_the_watch);
    rm_tree(base_dir);
    return check_summary("test_watch");
}
