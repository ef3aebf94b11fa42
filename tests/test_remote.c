/* state_connect: the one-bucket cases run on a bucket of an embedded store and on
 * the remote bucket of a real `state serve` this test starts (memfile and sled,
 * over its Unix socket), so both give the same results and status codes; sign-in,
 * options and quota errors over TCP; threads sharing one remote bucket; and a
 * client-side cache (reads answered while the server is stopped, dropped when
 * another connection writes, never older than the bucket's own write); and a
 * server killed (SIGKILL) under a writing client: the client reports STATE_IO,
 * the server is restarted, the next calls succeed, no acknowledged write is
 * missing and a watch resumes with a STATE_EVENT_LAGGED.
 *
 *   test_remote PATH/TO/state
 *
 * Run by `make c-test` under valgrind (the server runs natively: valgrind does not
 * follow exec). Threads meet through mutexes and condition variables. */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char base_dir[] = "/tmp/libstate-c-remote-XXXXXX";
static const char *state_bin;

static int contains(const char *hay, const char *needle) {
    return strstr(hay, needle) != NULL;
}

/* ---- a `state serve` of our own ------------------------------------------ */

struct server {
    pid_t pid;
    FILE *out; /* its standard output, kept open while it runs */
    int port;  /* its RESP TCP port on 127.0.0.1 */
    char store[512], sock[600], url[640];
};

/* `state --store STORE ARGS...` (no server); its first output line into `line`. */
static int state_cli(const char *store, const char *args, char *line, size_t size) {
    char cmd[2048];
    FILE *p;
    int ok;
    snprintf(cmd, sizeof cmd, "'%s' --store '%s' %s", state_bin, store, args);
    p = popen(cmd, "r");
    if (p == NULL) return -1;
    ok = line == NULL || fgets(line, (int)size, p) != NULL;
    if (pclose(p) != 0 || !ok) return -1;
    if (line != NULL) line[strcspn(line, "\n")] = 0;
    return 0;
}

/* Starts `state serve` on s->store with `engine` (and `extra`, one flag or NULL),
 * its socket s->sock, TCP on a free loopback port, no HTTP; returns once it printed
 * its ready line. 0, or -1 after printing why. */
/* Stops the server with SIGSTOP and returns once every one of its threads is
 * stopped (state 'T' in /proc/PID/task/TID/stat): kill() only queues the stop,
 * and a thread still running could answer one more request. 1 if stopped within
 * 5 s. */
static int stop_server(pid_t pid) {
    char path[64];
    int round;
    if (kill(pid, SIGSTOP) != 0) return 0;
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    for (round = 0; round < 5000; round++) {
        DIR *d = opendir(path);
        struct dirent *e;
        int running = 0, seen = 0;
        if (!d) return 0;
        while ((e = readdir(d)) != NULL) {
            char stat[384], buf[512];
            const char *close_paren;
            FILE *f;
            size_t got;
            if (e->d_name[0] == '.') continue;
            snprintf(stat, sizeof stat, "%s/%s/stat", path, e->d_name);
            f = fopen(stat, "r");
            if (!f) continue; /* the thread ended */
            got = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[got] = 0;
            /* "tid (comm) S ...": the state follows the last ')'. */
            close_paren = strrchr(buf, ')');
            seen++;
            if (!close_paren || close_paren[1] != ' ' || close_paren[2] != 'T') running++;
        }
        closedir(d);
        if (seen > 0 && running == 0) return 1;
        usleep(1000);
    }
    return 0;
}

static int server_start(struct server *s, const char *engine, const char *extra) {
    int fds[2];
    char line[512];
    if (pipe(fds) != 0) return -1;
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(fds[1], 1);
        if (null >= 0) dup2(null, 2);
        close(fds[0]);
        close(fds[1]);
        unsetenv("STATE_STORE");
        execl(state_bin, "state", "--store", s->store, "--engine", engine, "serve", "--resp",
              "127.0.0.1:0", "--http", "off", "--unix", s->sock, extra, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    s->out = fdopen(fds[0], "r");
    s->port = 0;
    while (s->out != NULL && fgets(line, sizeof line, s->out) != NULL) {
        const char *p = strstr(line, "redis protocol on 127.0.0.1:");
        if (p != NULL) s->port = atoi(p + strlen("redis protocol on 127.0.0.1:"));
        if (strncmp(line, "state serve: ready", 18) == 0) return s->port > 0 ? 0 : -1;
    }
    fprintf(stderr, "state serve (%s) did not start\n", state_bin);
    return -1;
}

static void server_stop(struct server *s, int sig) {
    if (s->pid > 0) {
        kill(s->pid, sig);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->out != NULL) fclose(s->out);
    s->out = NULL;
}

/* ---- the cases, for any bucket -------------------------------------------- */

/* Deletes every key, so each case starts empty. */
static void clear(state_bucket *b) {
    state_cursor *c;
    state_entries list = {.struct_size = sizeof list};
    size_t i;
    CHECK_OK(state_cursor_open(b, &c));
    CHECK_OK(state_cursor_next_n(c, 10000, &list));
    for (i = 0; i < list.len; i++) CHECK_OK(state_delete(b, STATE_ENTRY_AT(&list, i)->key, NULL));
    state_entries_free(&list);
    CHECK_OK(state_cursor_close(c));
}

struct lent {
    int calls;
    size_t len;
    uint8_t copy[16];
};

static void keep_value(void *ctx, const uint8_t *value, size_t value_len) {
    struct lent *l = ctx;
    l->calls++;
    l->len = value_len;
    if (value != NULL && value_len <= sizeof l->copy) memcpy(l->copy, value, value_len);
}

static void case_get_set_delete(state_bucket *b) {
    static const uint8_t bin[5] = {0, 1, 0, 255, 0};
    uint8_t *v = NULL;
    size_t n = 12345;
    bool existed = false;
    char long_key[1026];
    struct lent l;
    clear(b);
    CHECK_RC(state_get(b, "nope", &v, &n), STATE_NOT_FOUND);
    CHECK(v == NULL && n == 12345);
    CHECK_OK(state_set(b, "bin", bin, sizeof bin));
    CHECK_OK(state_get(b, "bin", &v, &n));
    CHECK(n == 5 && memcmp(v, bin, 5) == 0 && v[5] == 0);
    state_free(v);
    CHECK_OK(state_set(b, "empty", NULL, 0));
    v = NULL;
    CHECK_OK(state_get(b, "empty", &v, &n));
    CHECK(n == 0 && v != NULL && v[0] == 0);
    state_free(v);
    CHECK_OK(state_set(b, "bin", "xyz", 3));
    CHECK_OK(state_get(b, "bin", &v, &n));
    CHECK(n == 3 && memcmp(v, "xyz", 3) == 0);
    state_free(v);
    /* The lending read: called once with the value; not at all for a missing key. */
    memset(&l, 0, sizeof l);
    CHECK_OK(state_get_with(b, "bin", keep_value, &l));
    CHECK(l.calls == 1 && l.len == 3 && memcmp(l.copy, "xyz", 3) == 0);
    memset(&l, 0, sizeof l);
    CHECK_RC(state_get_with(b, "nope", keep_value, &l), STATE_NOT_FOUND);
    CHECK(l.calls == 0);
    CHECK_OK(state_delete(b, "bin", &existed));
    CHECK(existed);
    CHECK_OK(state_delete(b, "bin", &existed));
    CHECK(!existed);
    CHECK_RC(state_get(b, "bin", &v, &n), STATE_NOT_FOUND);
    /* The embedded argument checks, made before anything is sent. */
    CHECK_RC(state_get(b, NULL, &v, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "key is NULL"));
    CHECK_RC(state_get(b, "", &v, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "key must not be empty"));
    memset(long_key, 'k', 1025);
    long_key[1025] = 0;
    CHECK_RC(state_set(b, long_key, "v", 1), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "1024"));
    CHECK_RC(state_get(b, "bad\xff", &v, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set(b, "k", NULL, 1), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get(b, "k", NULL, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get(b, "k", &v, &n), STATE_NOT_FOUND);
}

static void case_multiple(state_bucket *b) {
    state_kv items[3] = {{"a", "1", 1}, {"b", "22", 2}, {"c", NULL, 0}};
    state_kv bad[2] = {{"x", "1", 1}, {"", "2", 1}};
    const char *keys[] = {"c", "missing", "a", "c"};
    state_entries list = {.struct_size = sizeof list};
    state_entries old_list = {.struct_size = sizeof old_list - 1};
    uint8_t *v;
    size_t n;
    clear(b);
    CHECK_OK(state_set_multiple(b, items, 3));
    CHECK_OK(state_set_multiple(b, NULL, 0));
    CHECK_OK(state_get_multiple(b, keys, 4, &list));
    CHECK(list.len == 2 && list.entry_size == sizeof(state_entry));
    if (list.len == 2) {
        CHECK(strcmp(STATE_ENTRY_AT(&list, 0)->key, "a") == 0 &&
              memcmp(STATE_ENTRY_AT(&list, 0)->value, "1", 1) == 0);
        CHECK(strcmp(STATE_ENTRY_AT(&list, 1)->key, "c") == 0 &&
              STATE_ENTRY_AT(&list, 1)->value_len == 0);
    }
    state_entries_free(&list);
    CHECK_RC(state_get_multiple(b, keys, 4, &old_list), STATE_INVALID_ARGUMENT);
    /* All or nothing: a bad key writes none of the batch. */
    CHECK_RC(state_set_multiple(b, bad, 2), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get(b, "x", &v, &n), STATE_NOT_FOUND);
}

static void case_ttl(state_bucket *b) {
    state_kv items[2] = {{"m1", "1", 1}, {"m2", "2", 1}};
    int64_t ms = 12345;
    bool had = false;
    uint8_t *v;
    size_t n;
    clear(b);
    CHECK_OK(state_set_with_ttl(b, "session", "abc", 3, 60000));
    CHECK_OK(state_ttl(b, "session", &ms));
    CHECK(ms > 0 && ms <= 60000);
    CHECK_OK(state_set(b, "session", "abc", 3));
    CHECK_OK(state_ttl(b, "session", &ms));
    CHECK(ms == STATE_NO_EXPIRY);
    CHECK_OK(state_expire(b, "session", 30000));
    CHECK_OK(state_ttl(b, "session", &ms));
    CHECK(ms > 0 && ms <= 30000);
    CHECK_OK(state_persist(b, "session", &had));
    CHECK(had);
    CHECK_OK(state_persist(b, "session", &had));
    CHECK(!had);
    CHECK_RC(state_expire(b, "missing", 1000), STATE_NOT_FOUND);
    ms = 777;
    CHECK_RC(state_ttl(b, "missing", &ms), STATE_NOT_FOUND);
    CHECK(ms == 777);
    CHECK_OK(state_set_multiple_with_ttl(b, items, 2, 60000));
    CHECK_OK(state_ttl(b, "m2", &ms));
    CHECK(ms > 0 && ms <= 60000);
    /* An expired key is gone for every read (time has to pass: this waits). */
    CHECK_OK(state_set_with_ttl(b, "flash", "x", 1, 40));
    usleep(120 * 1000);
    CHECK_RC(state_get(b, "flash", &v, &n), STATE_NOT_FOUND);
    CHECK_RC(state_ttl(b, "flash", &ms), STATE_NOT_FOUND);
    CHECK_RC(state_set_with_ttl(b, "z", "1", 1, 0), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "TTL must be positive"));
    CHECK_RC(state_expire(b, "session", -1), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get(b, "z", &v, &n), STATE_NOT_FOUND);
}

static int entry_is(const state_entry *e, const char *key, const char *value) {
    return e->key_len == strlen(key) && strcmp(e->key, key) == 0 &&
           e->value_len == strlen(value) && memcmp(e->value, value, e->value_len) == 0;
}

static void case_cursor(state_bucket *b) {
    state_kv items[4] = {{"b", "2", 1}, {"d", "4", 1}, {"f", "6", 1}, {"h", "8", 1}};
    state_cursor *c;
    state_entry e;
    state_entries list = {.struct_size = sizeof list};
    clear(b);
    CHECK_OK(state_cursor_open(b, &c));
    CHECK_RC(state_cursor_first(c, &e), STATE_NOT_FOUND); /* empty */
    CHECK_OK(state_set_multiple(b, items, 4));
    CHECK_OK(state_cursor_first(c, &e));
    CHECK(entry_is(&e, "b", "2"));
    state_entry_free(&e);
    CHECK_OK(state_cursor_next(c, &e));
    CHECK(entry_is(&e, "d", "4"));
    state_entry_free(&e);
    CHECK_OK(state_cursor_prev(c, &e));
    CHECK(entry_is(&e, "b", "2"));
    state_entry_free(&e);
    CHECK_OK(state_cursor_last(c, &e));
    CHECK(entry_is(&e, "h", "8"));
    state_entry_free(&e);
    CHECK_RC(state_cursor_next(c, &e), STATE_NOT_FOUND);
    CHECK_OK(state_cursor_prev(c, &e));
    CHECK(entry_is(&e, "h", "8"));
    state_entry_free(&e);
    CHECK_OK(state_cursor_seek(c, "e", &e));
    CHECK(entry_is(&e, "f", "6"));
    state_entry_free(&e);
    CHECK_RC(state_cursor_seek(c, "z", &e), STATE_NOT_FOUND);
    CHECK_OK(state_cursor_first(c, &e));
    state_entry_free(&e);
    CHECK_OK(state_cursor_next_n(c, 2, &list));
    CHECK(list.len == 2 && entry_is(STATE_ENTRY_AT(&list, 0), "d", "4") &&
          entry_is(STATE_ENTRY_AT(&list, 1), "f", "6"));
    state_entries_free(&list);
    CHECK_OK(state_cursor_next_n(c, 10, &list));
    CHECK(list.len == 1 && entry_is(STATE_ENTRY_AT(&list, 0), "h", "8"));
    state_entries_free(&list);
    CHECK_OK(state_cursor_prev_n(c, 3, &list));
    CHECK(list.len == 3 && entry_is(STATE_ENTRY_AT(&list, 0), "h", "8") &&
          entry_is(STATE_ENTRY_AT(&list, 2), "d", "4"));
    state_entries_free(&list);
    /* Stepping is by key: the cursor stays valid while the bucket changes. */
    CHECK_OK(state_cursor_seek(c, "d", &e));
    state_entry_free(&e);
    CHECK_OK(state_delete(b, "d", NULL));
    CHECK_OK(state_set(b, "e", "5", 1));
    CHECK_OK(state_cursor_next(c, &e));
    CHECK(entry_is(&e, "e", "5"));
    state_entry_free(&e);
    CHECK_RC(state_cursor_seek(c, "", &e), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_next(c, NULL), STATE_INVALID_ARGUMENT);
    CHECK_OK(state_cursor_close(c));
}

/* ---- watch ---------------------------------------------------------------- */

#define MAX_SEEN 64

struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n;
    struct {
        unsigned kind;
        int is_new, had_value;
        uint64_t missed;
        char key[32];
    } ev[MAX_SEEN];
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

static void record(void *ctx, const state_event *e) {
    struct recorder *r = ctx;
    pthread_mutex_lock(&r->mu);
    if (r->n < MAX_SEEN) {
        r->ev[r->n].kind = e->kind;
        r->ev[r->n].is_new = e->is_new;
        r->ev[r->n].had_value = e->value != NULL;
        r->ev[r->n].missed = e->missed;
        snprintf(r->ev[r->n].key, sizeof r->ev[r->n].key, "%s", e->key ? e->key : "");
        r->n++;
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* Waits until `r` holds at least `n` events. */
static void wait_events(struct recorder *r, int n) {
    pthread_mutex_lock(&r->mu);
    while (r->n < n) pthread_cond_wait(&r->cond, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void case_watch(state_bucket *b, int remote) {
    struct recorder r;
    state_watcher *w;
    static const unsigned want[5] = {STATE_EVENT_SET, STATE_EVENT_SET, STATE_EVENT_EXPIRE,
                                     STATE_EVENT_PERSIST, STATE_EVENT_DELETE};
    char long_prefix[1030];
    int i;
    clear(b);
    recorder_init(&r);
    CHECK_OK(state_watch(b, "w/", record, &r, &w));
    CHECK_OK(state_set(b, "w/a", "1", 1));
    CHECK_OK(state_set(b, "other", "not watched", 11));
    CHECK_OK(state_set(b, "w/a", "2", 1));
    CHECK_OK(state_expire(b, "w/a", 60000));
    CHECK_OK(state_persist(b, "w/a", NULL));
    CHECK_OK(state_delete(b, "w/a", NULL));
    wait_events(&r, 5);
    CHECK_OK(state_unwatch(w));
    CHECK(r.n == 5);
    for (i = 0; i < 5 && i < r.n; i++) {
        CHECK(r.ev[i].kind == want[i] && strcmp(r.ev[i].key, "w/a") == 0);
        CHECK(r.ev[i].missed == 0);
    }
    /* Embedded events carry the new value and whether the key was created; the
     * server's notifications carry neither. */
    CHECK(r.ev[0].had_value == !remote && r.ev[0].is_new == !remote);
    CHECK(!r.ev[4].had_value);
    CHECK_RC(state_unwatch(w), STATE_CLOSED);
    memset(long_prefix, 'p', 1029);
    long_prefix[1029] = 0;
    CHECK_RC(state_watch(b, long_prefix, record, &r, &w), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_watch(b, "w/", NULL, &r, &w), STATE_INVALID_ARGUMENT);
    recorder_destroy(&r);
    clear(b);
}

#define RUN_ARG(test, arg)                                                             \
    do {                                                                               \
        fprintf(stderr, "    %s\n", #test);                                            \
        test(arg);                                                                     \
    } while (0)

static void run_cases(state_bucket *b, int remote) {
    RUN_ARG(case_get_set_delete, b);
    RUN_ARG(case_multiple, b);
    RUN_ARG(case_ttl, b);
    RUN_ARG(case_cursor, b);
    fprintf(stderr, "    case_watch\n");
    case_watch(b, remote);
}

/* ---- embedded and remote, both engines ------------------------------------ */

static void test_the_cases_on_embedded_and_remote_buckets(const char *engine) {
    struct server s = {0};
    state_options o;
    state_store *st;
    state_bucket *local, *remote, *closed;
    char dir[512];
    uint8_t *v;
    size_t n;

    fprintf(stderr, "  embedded %s\n", engine);
    snprintf(dir, sizeof dir, "%s/embedded-%s", base_dir, engine);
    CHECK_OK(state_options_init(&o, sizeof o));
    o.engine = engine;
    CHECK_OK(state_open(dir, &o, &st));
    CHECK_OK(state_bucket_open(st, "user1", &local));
    run_cases(local, 0);
    CHECK_OK(state_bucket_close(local));
    CHECK_OK(state_close(st));

    fprintf(stderr, "  remote %s\n", engine);
    snprintf(s.store, sizeof s.store, "%s/served-%s", base_dir, engine);
    snprintf(s.sock, sizeof s.sock, "%s/state.sock", s.store);
    snprintf(s.url, sizeof s.url, "state+unix://%s", s.sock);
    if (state_cli(s.store, engine[0] == 'm' ? "--engine memfile set seed k v"
                                            : "--engine sled set seed k v",
                  NULL, 0) != 0 ||
        server_start(&s, engine, NULL) != 0) {
        CHECK(!"state serve started");
        return;
    }
    CHECK_OK(state_connect(s.url, NULL, &remote));
    run_cases(remote, 1);
    /* A closed remote handle is detected as any other. */
    CHECK_OK(state_connect(s.url, NULL, &closed));
    CHECK_OK(state_bucket_close(closed));
    CHECK_RC(state_get(closed, "k", &v, &n), STATE_CLOSED);
    CHECK_RC(state_bucket_close(closed), STATE_CLOSED);
    CHECK_OK(state_bucket_close(remote));
    server_stop(&s, SIGTERM);
}

/* ---- connecting: URLs, options, sign-in, quota ----------------------------- */

static void test_connect_arguments_sign_in_and_quota(void) {
    struct server s = {0};
    state_connect_options co, small;
    state_bucket *b = NULL, *untouched = (state_bucket *)&s;
    char alice[256], carol[256], url[700];
    state_kv two[2] = {{"c", "3", 1}, {"d", "4", 1}};
    uint8_t *v;
    size_t n;

    snprintf(s.store, sizeof s.store, "%s/signin", base_dir);
    snprintf(s.sock, sizeof s.sock, "%s/state.sock", s.store);
    snprintf(s.url, sizeof s.url, "state+unix://%s", s.sock);
    if (state_cli(s.store, "--engine memfile client add alice", alice, sizeof alice) != 0 ||
        state_cli(s.store, "client add carol --max-records 2", carol, sizeof carol) != 0 ||
        server_start(&s, "memfile", NULL) != 0) {
        CHECK(!"state serve started");
        return;
    }

    /* Options: initialized to the defaults; a short struct or a zero timeout is refused. */
    CHECK_OK(state_connect_options_init(&co, sizeof co));
    CHECK(co.struct_size == sizeof co && co.token == NULL && co.name == NULL &&
          co.timeout_ms == 10000 && co.ca_file == NULL);
    CHECK_RC(state_connect_options_init(&small, sizeof small - 1), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_connect_options_init(NULL, sizeof co), STATE_INVALID_ARGUMENT);
    co.timeout_ms = 0;
    CHECK_RC(state_connect(s.url, &co, &untouched), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "timeout_ms"));
    small = co;
    small.struct_size = sizeof small - 1;
    CHECK_RC(state_connect(s.url, &small, &untouched), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "struct_size"));
    CHECK(untouched == (state_bucket *)&s);

    /* Bad URLs, a missing server, a NULL out-parameter. */
    CHECK_RC(state_connect("http://example.com/", NULL, &untouched), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_connect("state+unix://", NULL, &untouched), STATE_INVALID_ARGUMENT);
    snprintf(url, sizeof url, "state+unix://%s/nothing.sock", base_dir);
    CHECK_RC(state_connect(url, NULL, &untouched), STATE_IO);
    CHECK(contains(state_last_error_message(), "cannot connect"));
    CHECK_RC(state_connect(s.url, NULL, NULL), STATE_INVALID_ARGUMENT);
    CHECK(untouched == (state_bucket *)&s);

    /* TCP: a token in the URL, or in the options; a wrong one is refused and never shown. */
    snprintf(url, sizeof url, "state://alice:%s@127.0.0.1:%d", alice, s.port);
    CHECK_OK(state_connect(url, NULL, &b));
    CHECK_OK(state_set(b, "mine", "alice's", 7));
    CHECK_OK(state_bucket_close(b));
    snprintf(url, sizeof url, "state://127.0.0.1:%d", s.port);
    CHECK_RC(state_connect(url, NULL, &untouched), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "NAME:TOKEN"));
    CHECK_OK(state_connect_options_init(&co, sizeof co));
    co.token = alice;
    co.name = "alice";
    co.timeout_ms = 5000;
    CHECK_OK(state_connect(url, &co, &b));
    CHECK_OK(state_get(b, "mine", &v, &n));
    CHECK(n == 7 && memcmp(v, "alice's", 7) == 0);
    state_free(v);
    CHECK_OK(state_bucket_close(b));
    co.token = "wrongtoken123";
    CHECK_RC(state_connect(url, &co, &untouched), STATE_INVALID_ARGUMENT);
    CHECK(!contains(state_last_error_message(), "wrongtoken123"));

    /* Buckets are the clients' own: the Unix user's is not alice's. */
    CHECK_OK(state_connect(s.url, NULL, &b));
    CHECK_RC(state_get(b, "mine", &v, &n), STATE_NOT_FOUND);
    CHECK_OK(state_bucket_close(b));

    /* carol's quota of 2 records: a batch over it writes nothing. */
    snprintf(url, sizeof url, "state://carol:%s@127.0.0.1:%d", carol, s.port);
    CHECK_OK(state_connect(url, NULL, &b));
    CHECK_OK(state_set(b, "a", "1", 1));
    CHECK_RC(state_set_multiple(b, two, 2), STATE_QUOTA_EXCEEDED);
    CHECK(contains(state_last_error_message(), "quota"));
    CHECK_RC(state_get(b, "c", &v, &n), STATE_NOT_FOUND);
    CHECK_OK(state_bucket_close(b));

    /* No URL: the default store's socket, $STATE_STORE/state.sock. */
    setenv("STATE_STORE", s.store, 1);
    CHECK_OK(state_connect(NULL, NULL, &b));
    unsetenv("STATE_STORE");
    CHECK_OK(state_set(b, "via", "default", 7));
    CHECK_OK(state_bucket_close(b));

    server_stop(&s, SIGTERM);
}

/* ---- threads -------------------------------------------------------------- */

struct worker {
    state_bucket *b;
    int id, failures;
};

static void *work(void *arg) {
    struct worker *w = arg;
    char key[32], val[32];
    uint8_t *v;
    size_t n;
    int i;
    for (i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "t%d/%03d", w->id, i);
        snprintf(val, sizeof val, "%d-%d", w->id, i);
        if (state_set(w->b, key, val, strlen(val)) != STATE_OK) w->failures++;
        if (state_get(w->b, key, &v, &n) != STATE_OK) {
            w->failures++;
            continue;
        }
        if (n != strlen(val) || memcmp(v, val, n) != 0) w->failures++;
        state_free(v);
    }
    return NULL;
}

static void test_threads_share_a_remote_bucket(void) {
    struct server s = {0};
    state_bucket *b;
    struct worker w[4];
    pthread_t t[4];
    int i;
    snprintf(s.store, sizeof s.store, "%s/threads", base_dir);
    snprintf(s.sock, sizeof s.sock, "%s/state.sock", s.store);
    snprintf(s.url, sizeof s.url, "state+unix://%s", s.sock);
    if (state_cli(s.store, "--engine memfile set seed k v", NULL, 0) != 0 ||
        server_start(&s, "memfile", NULL) != 0) {
        CHECK(!"state serve started");
        return;
    }
    CHECK_OK(state_connect(s.url, NULL, &b));
    for (i = 0; i < 4; i++) {
        w[i].b = b;
        w[i].id = i;
        w[i].failures = 0;
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].failures == 0);
    }
    CHECK_OK(state_bucket_close(b));
    server_stop(&s, SIGTERM);
}

/* ---- the client-side cache ------------------------------------------------ */

/* Whether `b`'s get of `key` is `want` (a NUL-terminated value). */
static int get_is(state_bucket *b, const char *key, const char *want) {
    uint8_t *v = NULL;
    size_t n = 0;
    int same;
    if (state_get(b, key, &v, &n) != STATE_OK) return 0;
    same = n == strlen(want) && memcmp(v, want, n) == 0;
    state_free(v);
    return same;
}

static void test_the_cache_answers_reads_and_drops_what_changes(void) {
    struct server s = {0};
    state_connect_options co;
    state_bucket *cached, *other;
    uint8_t *v = NULL;
    size_t n = 0;
    int tries, cached_ok;
    snprintf(s.store, sizeof s.store, "%s/cache", base_dir);
    snprintf(s.sock, sizeof s.sock, "%s/state.sock", s.store);
    snprintf(s.url, sizeof s.url, "state+unix://%s", s.sock);
    if (state_cli(s.store, "--engine memfile set seed k v1", NULL, 0) != 0 ||
        server_start(&s, "memfile", NULL) != 0) {
        CHECK(!"state serve started");
        return;
    }
    CHECK_OK(state_connect_options_init(&co, sizeof co));
    CHECK(co.cache_entries == 0 && co.cache_bytes == 0);
    co.cache_entries = 100;
    co.timeout_ms = 500;
    CHECK_OK(state_connect(s.url, &co, &cached));
    CHECK_OK(state_connect(s.url, NULL, &other));
    CHECK_OK(state_set(other, "k", "v1", 2));

    /* Read it; with the server stopped (SIGSTOP), the cached key is still
     * answered, and a key never read is not (the call times out). A read that an
     * invalidation overtakes is not kept (here: the invalidation of `other`'s
     * write above may still be on its way), so read again until one was kept
     * (bounded: each miss costs a timed-out call). */
    for (tries = 0, cached_ok = 0; tries < 10 && !cached_ok; tries++) {
        CHECK(get_is(cached, "k", "v1"));
        CHECK(stop_server(s.pid));
        cached_ok = get_is(cached, "k", "v1");
        kill(s.pid, SIGCONT);
    }
    CHECK(cached_ok);
    CHECK(stop_server(s.pid));
    CHECK_RC(state_get(cached, "never-read", &v, &n), STATE_IO);
    kill(s.pid, SIGCONT);

    /* Another connection's write: the server invalidates the key, and the cached
     * bucket reads the new value once the invalidation arrived (bounded wait). */
    CHECK_OK(state_set(other, "k", "v2", 2));
    for (tries = 0; tries < 5000 && !get_is(cached, "k", "v2"); tries++) usleep(1000);
    CHECK(get_is(cached, "k", "v2"));

    /* Its own write is never read back older. */
    CHECK_OK(state_set(cached, "k", "v3", 2));
    CHECK(get_is(cached, "k", "v3"));
    CHECK_OK(state_delete(cached, "k", NULL));
    CHECK_RC(state_get(cached, "k", &v, &n), STATE_NOT_FOUND);

    /* A cache_bytes of its own is accepted. */
    CHECK_OK(state_bucket_close(cached));
    co.cache_bytes = 1 << 20;
    CHECK_OK(state_connect(s.url, &co, &cached));
    CHECK_OK(state_set(other, "k", "v4", 2));
    CHECK(get_is(cached, "k", "v4"));
    CHECK_OK(state_bucket_close(cached));
    CHECK_OK(state_bucket_close(other));
    server_stop(&s, SIGTERM);
}

/* ---- a server killed and restarted under its clients ----------------------- */

struct writer {
    state_bucket *b;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int acked;         /* writes w/000000 .. acked-1 were acknowledged */
    state_status last; /* the status that ended the loop */
};

static void *write_until_it_fails(void *arg) {
    struct writer *w = arg;
    char key[32], val[32];
    int i;
    for (i = 0;; i++) {
        state_status rc;
        snprintf(key, sizeof key, "w/%06d", i);
        snprintf(val, sizeof val, "%d", i);
        rc = state_set(w->b, key, val, strlen(val));
        pthread_mutex_lock(&w->mu);
        if (rc == STATE_OK) w->acked = i + 1;
        else w->last = rc;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
        if (rc != STATE_OK) return NULL;
    }
}

static void test_a_killed_server_loses_no_acknowledged_write(void) {
    struct server s = {0};
    struct writer w;
    struct recorder r;
    state_bucket *reader;
    state_watcher *watch;
    pthread_t t;
    const char **keys;
    state_entries list = {.struct_size = sizeof list};
    uint8_t *v;
    size_t n;
    int i, lagged_at = -1;

    snprintf(s.store, sizeof s.store, "%s/killed", base_dir);
    snprintf(s.sock, sizeof s.sock, "%s/state.sock", s.store);
    snprintf(s.url, sizeof s.url, "state+unix://%s", s.sock);
    /* --sync: a write is acknowledged once it is on disk. */
    if (state_cli(s.store, "--engine memfile set seed k v", NULL, 0) != 0 ||
        server_start(&s, "memfile", "--sync") != 0) {
        CHECK(!"state serve started");
        return;
    }
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    recorder_init(&r);
    CHECK_OK(state_connect(s.url, NULL, &w.b));
    CHECK_OK(state_connect(s.url, NULL, &reader));
    CHECK_OK(state_set(reader, "before", "1", 1)); /* leaves an idle connection */
    CHECK_OK(state_watch(reader, "after/", record, &r, &watch));

    CHECK(pthread_create(&t, NULL, write_until_it_fails, &w) == 0);
    pthread_mutex_lock(&w.mu);
    while (w.acked < 50 && w.last == STATE_OK) pthread_cond_wait(&w.cond, &w.mu);
    pthread_mutex_unlock(&w.mu);
    server_stop(&s, SIGKILL);
    pthread_join(t, NULL);

    /* The writer learns of it as an I/O error, the outcome of its write unknown. */
    CHECK(w.last == STATE_IO);
    CHECK_RC(state_get(w.b, "w/000000", &v, &n), STATE_IO);
    CHECK(contains(state_last_error_message(), "cannot connect"));
    CHECK_RC(state_set(reader, "x", "1", 1), STATE_IO);

    if (server_start(&s, "memfile", "--sync") != 0) {
        CHECK(!"state serve restarted");
    } else {
        /* The reader's idle connection is stale: its read is retried on a new one. */
        CHECK_OK(state_get(reader, "before", &v, &n));
        CHECK(n == 1 && v[0] == '1');
        state_free(v);
        /* Every acknowledged write is there. */
        keys = calloc((size_t)w.acked + 1, sizeof *keys);
        for (i = 0; keys != NULL && i < w.acked; i++) {
            char *k = malloc(16);
            if (k != NULL) snprintf(k, 16, "w/%06d", i);
            keys[i] = k;
        }
        if (keys != NULL) {
            CHECK_OK(state_get_multiple(w.b, keys, (size_t)w.acked, &list));
            CHECK(list.len == (size_t)w.acked);
            if (list.len != (size_t)w.acked)
                fprintf(stderr, "acknowledged %d writes, found %zu\n", w.acked, list.len);
            state_entries_free(&list);
            for (i = 0; i < w.acked; i++) free((void *)keys[i]);
            free(keys);
        }
        /* The handle writes again, and the watch resumes: first a lag event (what
         * changed while it was away was not seen), then the new changes. */
        CHECK_OK(state_set(w.b, "after", "restart", 7));
        CHECK_OK(state_get(reader, "after", &v, &n));
        CHECK(n == 7 && memcmp(v, "restart", 7) == 0);
        state_free(v);
        wait_events(&r, 1);
        CHECK(r.ev[0].kind == STATE_EVENT_LAGGED && r.ev[0].missed == 0);
        CHECK_OK(state_set(w.b, "after/x", "1", 1));
        wait_events(&r, 2);
        for (i = 0; i < r.n; i++)
            if (r.ev[i].kind == STATE_EVENT_LAGGED) lagged_at = i;
        CHECK(lagged_at == 0 && r.n == 2 && r.ev[1].kind == STATE_EVENT_SET &&
              strcmp(r.ev[1].key, "after/x") == 0);
    }
    CHECK_OK(state_unwatch(watch));
    CHECK_OK(state_bucket_close(w.b));
    CHECK_OK(state_bucket_close(reader));
    recorder_destroy(&r);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
    server_stop(&s, SIGTERM);
}

int main(int argc, char **argv) {
    int rc;
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/state\n", argv[0]);
        return 2;
    }
    state_bin = argv[1];
    if (test_dir_make(base_dir) != 0) return 1;
    test_the_cases_on_embedded_and_remote_buckets("memfile");
    test_the_cases_on_embedded_and_remote_buckets("sled");
    RUN(test_connect_arguments_sign_in_and_quota);
    RUN(test_threads_share_a_remote_bucket);
    RUN(test_the_cache_answers_reads_and_drops_what_changes);
    RUN(test_a_killed_server_loses_no_acknowledged_write);
    rc = check_summary("test_remote");
    rm_tree(base_dir);
    return rc;
}
