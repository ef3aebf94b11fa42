/* The libstate C API, function by function, including every error path: NULL
 * arguments, invalid UTF-8, bad keys and names, closed and double-closed handles,
 * handles of the wrong type, locked / corrupt / I/O stores, size limits.
 * Run by `make test` under valgrind and again with ASan + UBSan. */
#include "check.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char base_dir[] = "/tmp/libstate-c-test-XXXXXX";
static const char *self_path;

/* A marker written into out-parameters to prove failed calls leave them alone. */
static char sentinel_byte;
#define SENTINEL ((void *)&sentinel_byte)

static void path_in(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", base_dir, name);
}

static int contains(const char *hay, const char *needle) {
    return strstr(hay, needle) != NULL;
}

/* Opens a fresh store `name` under the test directory with default options. */
static state_store *open_store(const char *name) {
    char p[512];
    state_store *st = NULL;
    path_in(p, sizeof p, name);
    CHECK_OK(state_open(p, NULL, &st));
    return st;
}

static void test_version(void) {
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", STATE_VERSION_MAJOR, STATE_VERSION_MINOR,
             STATE_VERSION_PATCH);
    CHECK(strcmp(state_version(), STATE_VERSION) == 0);
    CHECK(strcmp(state_version(), expect) == 0);
    CHECK(state_version_number() == STATE_VERSION_NUMBER);
    CHECK(STATE_VERSION_NUMBER ==
          STATE_VERSION_MAJOR * 1000000 + STATE_VERSION_MINOR * 1000 + STATE_VERSION_PATCH);
}

static void test_status_str_names_every_code(void) {
    CHECK(STATE_OK == 0);
    CHECK(strcmp(state_status_str(STATE_OK), "ok") == 0);
    CHECK(strcmp(state_status_str(STATE_NOT_FOUND), "not found") == 0);
    CHECK(strcmp(state_status_str(STATE_INVALID_ARGUMENT), "invalid argument") == 0);
    CHECK(strcmp(state_status_str(STATE_LOCKED), "locked") == 0);
    CHECK(strcmp(state_status_str(STATE_CORRUPT), "corrupt") == 0);
    CHECK(strcmp(state_status_str(STATE_IO), "I/O") == 0);
    CHECK(strcmp(state_status_str(STATE_TOO_LARGE), "too large") == 0);
    CHECK(strcmp(state_status_str(STATE_CLOSED), "closed") == 0);
    CHECK(strcmp(state_status_str(STATE_INTERNAL), "internal") == 0);
    CHECK(strcmp(state_status_str(STATE_QUOTA_EXCEEDED), "quota exceeded") == 0);
    CHECK(strcmp(state_status_str(-1), "unknown status") == 0);
    CHECK(strcmp(state_status_str(9999), "unknown status") == 0);
}

static void test_last_error_starts_empty_and_names_argument(void) {
    state_store *st = SENTINEL;
    CHECK(state_last_error_message() != NULL);
    CHECK_RC(state_open(NULL, NULL, &st), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "path is NULL"));
    CHECK(st == SENTINEL);
}

static void test_options(void) {
    state_options o;
    char p[512];
    state_store *st = SENTINEL;
    state_bucket *b;
    unsigned char big[sizeof(state_options) + 16];
    static unsigned char value[100];

    CHECK_RC(state_options_init(NULL, sizeof o), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_options_init(&o, sizeof o - 1), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "struct_size"));

    CHECK_OK(state_options_init(&o, sizeof o));
    CHECK(o.struct_size == sizeof o);
    CHECK(o.engine == NULL);
    CHECK(o.sync == false);
    CHECK(o.flush_interval_ms == 500);
    CHECK(o.cache_size == 128u << 20);
    CHECK(o.max_value_size == 16u << 20);
    CHECK(o.max_batch_size == 256u << 20);

    path_in(p, sizeof p, "options");
    /* Out-of-range options are invalid arguments and open nothing. */
    o.flush_interval_ms = 0;
    CHECK_RC(state_open(p, &o, &st), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "flush_interval"));
    CHECK_OK(state_options_init(&o, sizeof o));
    o.cache_size = 0;
    CHECK_RC(state_open(p, &o, &st), STATE_INVALID_ARGUMENT);
    CHECK_OK(state_options_init(&o, sizeof o));
    o.max_value_size = 0;
    CHECK_RC(state_open(p, &o, &st), STATE_INVALID_ARGUMENT);
    CHECK_OK(state_options_init(&o, sizeof o));
    o.max_batch_size = 0;
    CHECK_RC(state_open(p, &o, &st), STATE_INVALID_ARGUMENT);
    CHECK_OK(state_options_init(&o, sizeof o));
    o.engine = "nosuchengine";
    CHECK_RC(state_open(p, &o, &st), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "nosuchengine"));
    o.engine = "\xff\xfe";
    CHECK_RC(state_open(p, &o, &st), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "UTF-8"));
    /* A struct_size smaller than the struct: not prepared by state_options_init. */
    CHECK_OK(state_options_init(&o, sizeof o));
    o.struct_size = 8;
    CHECK_RC(state_open(p, &o, &st), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "state_options_init"));
    CHECK(st == SENTINEL);

    /* A newer program's bigger struct: unknown trailing fields must be zero. */
    memset(big, 0xAB, sizeof big);
    CHECK_OK(state_options_init((state_options *)(void *)big, sizeof big));
    CHECK(big[sizeof big - 1] == 0);
    big[sizeof(state_options) + 3] = 1;
    CHECK_RC(state_open(p, (state_options *)(void *)big, &st), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "does not know"));
    CHECK(st == SENTINEL);

    /* Options that are honoured: the engine by name and the value limit. */
    CHECK_OK(state_options_init(&o, sizeof o));
    o.engine = "sled";
    o.max_value_size = 64;
    o.sync = true;
    CHECK_OK(state_open(p, &o, &st));
    CHECK_OK(state_bucket_open(st, "b", &b));
    CHECK_OK(state_set(b, "fits", value, 64));
    CHECK_RC(state_set(b, "toobig", value, 65), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "toobig"));
    CHECK_OK(state_flush(st));
    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_close(st));
}

static void test_open_errors(void) {
    char p[512], q[512];
    state_store *st = SENTINEL;
    FILE *f;

    path_in(p, sizeof p, "a-file");
    f = fopen(p, "w");
    CHECK(f != NULL);
    if (f) {
        fclose(f);
    }
    CHECK_RC(state_open(p, NULL, NULL), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "store is NULL"));
    /* A path that is a file: invalid argument naming the path. */
    CHECK_RC(state_open(p, NULL, &st), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), p));
    /* Below a file: the directory cannot be created, an I/O error naming the path. */
    path_in(q, sizeof q, "a-file/sub");
    CHECK_RC(state_open(q, NULL, &st), STATE_IO);
    CHECK(contains(state_last_error_message(), "a-file"));
    CHECK_RC(state_open("", NULL, &st), STATE_INVALID_ARGUMENT);
    CHECK(st == SENTINEL);
}

/* Child mode: hold store `dir` open until stdin closes. */
static int hold_store(const char *dir) {
    state_store *st;
    char c;
    if (state_open(dir, NULL, &st) != STATE_OK) {
        fprintf(stderr, "child: %s\n", state_last_error_message());
        return 1;
    }
    if (write(1, "R", 1) != 1) {
        return 1;
    }
    while (read(0, &c, 1) > 0) {
    }
    return state_close(st) == STATE_OK ? 0 : 1;
}

static void test_locked_by_another_process(void) {
    char p[512], c = 0;
    int to_child[2], from_child[2], status = 0;
    pid_t pid;
    state_store *st = SENTINEL;

    path_in(p, sizeof p, "locked");
    CHECK(pipe(to_child) == 0 && pipe(from_child) == 0);
    pid = fork();
    if (pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[1]);
        close(from_child[0]);
        execl(self_path, self_path, "--hold", p, (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    CHECK(read(from_child[0], &c, 1) == 1 && c == 'R');
    CHECK_RC(state_open(p, NULL, &st), STATE_LOCKED);
    CHECK(contains(state_last_error_message(), "locked"));
    CHECK(contains(state_last_error_message(), "locked/") || contains(state_last_error_message(), p));
    CHECK(st == SENTINEL);
    close(to_child[1]);
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(from_child[0]);
    /* Released: now it opens. */
    CHECK_OK(state_open(p, NULL, &st));
    CHECK_OK(state_close(st));
}

static void test_corrupt_store_is_reported_and_left_alone(void) {
    char p[512], f[600];
    state_store *st = SENTINEL;
    struct stat before, after;
    int fd;
    static const char junk[] = "this is not a sled database, not at all";

    path_in(p, sizeof p, "corrupt");
    CHECK(mkdir(p, 0700) == 0);
    snprintf(f, sizeof f, "%s/conf", p);
    fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    snprintf(f, sizeof f, "%s/db", p);
    fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    CHECK(stat(f, &before) == 0);

    CHECK_RC(state_open(p, NULL, &st), STATE_CORRUPT);
    CHECK(contains(state_last_error_message(), "corrupt"));
    CHECK(st == SENTINEL);
    CHECK(stat(f, &after) == 0 && after.st_size == before.st_size);
}

static void test_same_directory_twice_shares_the_store(void) {
    char p[512];
    state_store *a, *b2;
    state_bucket *ba, *bb;
    uint8_t *v;
    size_t n;

    path_in(p, sizeof p, "twice");
    CHECK_OK(state_open(p, NULL, &a));
    CHECK_OK(state_open(p, NULL, &b2));
    CHECK(a != b2);
    CHECK_OK(state_bucket_open(a, "u", &ba));
    CHECK_OK(state_bucket_open(b2, "u", &bb));
    CHECK_OK(state_set(ba, "k", "v1", 2));
    CHECK_OK(state_get(bb, "k", &v, &n));
    CHECK(n == 2 && memcmp(v, "v1", 2) == 0);
    state_free(v);
    /* Closing one handle leaves the other working. */
    CHECK_OK(state_close(a));
    CHECK_RC(state_get(ba, "k", &v, &n), STATE_CLOSED);
    CHECK_OK(state_get(bb, "k", &v, &n));
    state_free(v);
    CHECK_OK(state_bucket_close(ba));
    CHECK_OK(state_bucket_close(bb));
    CHECK_OK(state_close(b2));
}

static void test_get_set_delete(void) {
    state_store *st = open_store("kv");
    state_bucket *b;
    uint8_t *v = SENTINEL;
    size_t n = 12345;
    bool existed = false;
    static const uint8_t bin[5] = {0, 1, 0, 255, 0};
    char long_key[1026];

    CHECK_OK(state_bucket_open(st, "user1", &b));

    /* Missing: not found, out-parameters untouched, message unchanged. */
    CHECK_RC(state_open(NULL, NULL, NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get(b, "nope", &v, &n), STATE_NOT_FOUND);
    CHECK(v == SENTINEL && n == 12345);
    CHECK(contains(state_last_error_message(), "path is NULL"));

    /* Binary values round-trip, with a NUL after them. */
    CHECK_OK(state_set(b, "bin", bin, sizeof bin));
    CHECK_OK(state_get(b, "bin", &v, &n));
    CHECK(n == 5 && memcmp(v, bin, 5) == 0 && v[5] == 0);
    state_free(v);
    /* Empty value: a non-NULL, NUL-terminated buffer of length 0. */
    CHECK_OK(state_set(b, "empty", NULL, 0));
    v = SENTINEL;
    CHECK_OK(state_get(b, "empty", &v, &n));
    CHECK(n == 0 && v != NULL && v != SENTINEL && v[0] == 0);
    state_free(v);
    /* Overwrite. */
    CHECK_OK(state_set(b, "bin", "xyz", 3));
    CHECK_OK(state_get(b, "bin", &v, &n));
    CHECK(n == 3 && memcmp(v, "xyz", 3) == 0);
    state_free(v);
    /* UTF-8 keys. */
    CHECK_OK(state_set(b, "cl\xc3\xa9", "e", 1));
    CHECK_OK(state_get(b, "cl\xc3\xa9", &v, &n));
    state_free(v);

    /* Delete reports whether the key existed; missing is not an error. */
    CHECK_OK(state_delete(b, "bin", &existed));
    CHECK(existed == true);
    CHECK_OK(state_delete(b, "bin", &existed));
    CHECK(existed == false);
    CHECK_OK(state_delete(b, "empty", NULL));
    CHECK_RC(state_get(b, "bin", &v, &n), STATE_NOT_FOUND);

    /* Argument errors. */
    v = SENTINEL;
    n = 7;
    CHECK_RC(state_get(b, NULL, &v, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "key is NULL"));
    CHECK_RC(state_get(b, "", &v, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "key must not be empty"));
    memset(long_key, 'k', 1025);
    long_key[1025] = 0;
    CHECK_RC(state_get(b, long_key, &v, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "1024"));
    CHECK_RC(state_get(b, "bad\xff", &v, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "key is not valid UTF-8"));
    CHECK_RC(state_get(b, "k", NULL, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "value is NULL"));
    CHECK_RC(state_get(b, "k", &v, NULL), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "value_len is NULL"));
    CHECK(v == SENTINEL && n == 7);
    CHECK_RC(state_set(b, NULL, "v", 1), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set(b, "", "v", 1), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set(b, long_key, "v", 1), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set(b, "bad\xc3", "v", 1), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set(b, "k", NULL, 1), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "value is NULL but its length is 1"));
    CHECK_RC(state_delete(b, NULL, &existed), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_delete(b, "", &existed), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_delete(b, "\xff", &existed), STATE_INVALID_ARGUMENT);
    /* Nothing was written by the failed sets. */
    CHECK_RC(state_get(b, "k", &v, &n), STATE_NOT_FOUND);

    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_close(st));
}

/* What a `state_get_with` callback saw, and what it tried from inside. */
struct lent {
    int calls;
    size_t len;
    uint8_t copy[16];
    int value_was_null;
    state_bucket *bucket; /* when set, the callback tries to read and write it */
    state_status nested_get, nested_set;
    size_t nested_len;
};

static void keep_value(void *ctx, const uint8_t *value, size_t value_len) {
    struct lent *l = ctx;
    l->calls++;
    l->len = value_len;
    l->value_was_null = value == NULL;
    if (value != NULL && value_len <= sizeof l->copy) {
        memcpy(l->copy, value, value_len);
    }
    if (l->bucket != NULL) {
        uint8_t *v = NULL;
        size_t n = 0;
        l->nested_get = state_get(l->bucket, "other", &v, &n);
        if (l->nested_get == STATE_OK) {
            l->nested_len = n;
            state_free(v);
        }
        l->nested_set = state_set(l->bucket, "k", "x", 1);
    }
}

static void test_get_with_lends_the_value(void) {
    state_store *st = open_store("lend");
    state_bucket *b;
    struct lent l;
    static const uint8_t bin[5] = {0, 1, 0, 255, 0};
    uint8_t *v;
    size_t n;

    CHECK_OK(state_bucket_open(st, "b", &b));
    CHECK_OK(state_set(b, "k", bin, sizeof bin));
    CHECK_OK(state_set(b, "empty", NULL, 0));
    CHECK_OK(state_set(b, "other", "abc", 3));

    memset(&l, 0, sizeof l);
    CHECK_OK(state_get_with(b, "k", keep_value, &l));
    CHECK(l.calls == 1 && l.len == 5 && memcmp(l.copy, bin, 5) == 0);
    /* An empty value: called once with length 0 and a non-NULL pointer. */
    memset(&l, 0, sizeof l);
    CHECK_OK(state_get_with(b, "empty", keep_value, &l));
    CHECK(l.calls == 1 && l.len == 0 && !l.value_was_null);
    /* Missing: not found, not called. */
    memset(&l, 0, sizeof l);
    CHECK_RC(state_get_with(b, "nope", keep_value, &l), STATE_NOT_FOUND);
    CHECK(l.calls == 0);

    /* From inside the callback: reading the same store works, writing is refused
     * (it would deadlock) and writes nothing. */
    memset(&l, 0, sizeof l);
    l.bucket = b;
    CHECK_OK(state_get_with(b, "k", keep_value, &l));
    CHECK(l.calls == 1 && l.nested_get == STATE_OK && l.nested_len == 3);
    CHECK(l.nested_set == STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "callback"));
    CHECK_OK(state_get(b, "k", &v, &n));
    CHECK(n == 5 && memcmp(v, bin, 5) == 0);
    state_free(v);

    /* Argument errors: nothing is called. */
    memset(&l, 0, sizeof l);
    CHECK_RC(state_get_with(b, "k", NULL, &l), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "visit is NULL"));
    CHECK_RC(state_get_with(b, NULL, keep_value, &l), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get_with(b, "", keep_value, &l), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get_with(b, "bad\xff", keep_value, &l), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get_with(NULL, "k", keep_value, &l), STATE_INVALID_ARGUMENT);
    CHECK(l.calls == 0);

    CHECK_OK(state_close(st));
    CHECK_RC(state_get_with(b, "k", keep_value, &l), STATE_CLOSED);
    CHECK(l.calls == 0);
    CHECK_OK(state_bucket_close(b));
}

static void test_get_multiple_and_set_multiple(void) {
    char p[512];
    state_options o;
    state_store *st;
    state_bucket *b;
    state_entries list = {.struct_size = sizeof list};
    state_entries old_list = {.struct_size = sizeof old_list - 1};
    /* A caller built against a later header, whose state_entries has one more field. */
    struct {
        state_entries list;
        size_t appended;
    } newer = {{.struct_size = sizeof newer}, 7};
    uint8_t *v;
    size_t n;
    const char *keys[] = {"c", "missing", "a", "c"};
    const char *bad_keys[] = {"a", NULL};
    state_kv items[3] = {{"a", "1", 1}, {"b", "22", 2}, {"c", NULL, 0}};
    state_kv bad[2] = {{"x", "1", 1}, {"", "2", 1}};
    state_kv bad_value[1] = {{"y", NULL, 3}};
    state_kv null_key[1] = {{NULL, "1", 1}};
    static char blob[600];
    state_kv large[2] = {{"big1", blob, sizeof blob}, {"big2", blob, sizeof blob}};

    CHECK_OK(state_options_init(&o, sizeof o));
    o.max_batch_size = 1000;
    path_in(p, sizeof p, "multi");
    CHECK_OK(state_open(p, &o, &st));
    CHECK_OK(state_bucket_open(st, "m", &b));

    CHECK_OK(state_set_multiple(b, items, 3));
    CHECK_OK(state_set_multiple(b, NULL, 0)); /* empty batch: nothing to do */

    CHECK_OK(state_get_multiple(b, keys, 4, &list));
    CHECK(list.len == 2);
    /* The library keeps the caller's struct_size and says how far apart its entries
     * are; STATE_ENTRY_AT steps by that, as a program must. */
    CHECK(list.struct_size == sizeof list);
    CHECK(list.entry_size == sizeof(state_entry));
    if (list.len == 2) {
        CHECK(STATE_ENTRY_AT(&list, 0) == &list.items[0]);
        CHECK(STATE_ENTRY_AT(&list, 1) == &list.items[1]);
        CHECK(strcmp(STATE_ENTRY_AT(&list, 0)->key, "a") == 0 && STATE_ENTRY_AT(&list, 0)->key_len == 1);
        CHECK(STATE_ENTRY_AT(&list, 0)->value_len == 1 &&
              memcmp(STATE_ENTRY_AT(&list, 0)->value, "1", 1) == 0);
        CHECK(strcmp(STATE_ENTRY_AT(&list, 1)->key, "c") == 0 && STATE_ENTRY_AT(&list, 1)->value_len == 0);
    }
    state_entries_free(&list);
    CHECK(list.items == NULL && list.len == 0 && list.struct_size == sizeof list);
    state_entries_free(&list); /* twice: nothing happens */

    /* A longer struct (a newer caller): filled up to this library's fields, its own
     * tail left alone. A shorter one (an older caller): refused, nothing written. */
    CHECK_OK(state_get_multiple(b, keys, 4, &newer.list));
    CHECK(newer.list.struct_size == sizeof newer && newer.appended == 7);
    CHECK(newer.list.len == 2 && newer.list.entry_size == sizeof(state_entry));
    state_entries_free(&newer.list);
    old_list.items = SENTINEL;
    CHECK_RC(state_get_multiple(b, keys, 4, &old_list), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "entries->struct_size"));
    CHECK(old_list.items == SENTINEL && old_list.entry_size == 0);

    CHECK_OK(state_get_multiple(b, NULL, 0, &list));
    CHECK(list.len == 0 && list.items == NULL);
    state_entries_free(&list);

    /* Errors: nothing written, out-parameter untouched. */
    list.items = SENTINEL;
    list.len = 99;
    CHECK_RC(state_get_multiple(b, NULL, 2, &list), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "keys is NULL"));
    CHECK_RC(state_get_multiple(b, bad_keys, 2, &list), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "keys[1] is NULL"));
    CHECK_RC(state_get_multiple(b, keys, 4, NULL), STATE_INVALID_ARGUMENT);
    CHECK(list.items == SENTINEL && list.len == 99);

    CHECK_RC(state_set_multiple(b, bad, 2), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get(b, "x", &v, &n), STATE_NOT_FOUND); /* all or nothing */
    CHECK_RC(state_set_multiple(b, bad_value, 1), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "items[0].value is NULL"));
    CHECK_RC(state_set_multiple(b, null_key, 1), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "items[0].key is NULL"));
    CHECK_RC(state_set_multiple(b, NULL, 1), STATE_INVALID_ARGUMENT);
    /* Over max_batch_size: too large, nothing written. */
    CHECK_RC(state_set_multiple(b, large, 2), STATE_TOO_LARGE);
    CHECK(contains(state_last_error_message(), "max_batch_size"));
    CHECK_RC(state_get(b, "big1", &v, &n), STATE_NOT_FOUND);

    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_close(st));
}

static void test_buckets_names_remove_info(void) {
    state_store *st = open_store("buckets");
    state_bucket *b1, *b2, *b = SENTINEL;
    state_strings names = {.struct_size = sizeof names};
    state_strings old_names = {.struct_size = sizeof old_names - 1};
    state_info info = {.struct_size = sizeof info};
    state_info old_caller = {.struct_size = sizeof info - 1};
    bool existed = true;
    char long_name[300];

    CHECK_OK(state_bucket_names(st, &names));
    CHECK(names.len == 0 && names.items == NULL);
    state_strings_free(&names);

    CHECK_OK(state_bucket_open(st, "beta", &b1));
    CHECK_OK(state_bucket_open(st, "alpha", &b2));
    CHECK_OK(state_set(b1, "k1", "v", 1));
    CHECK_OK(state_set(b1, "k2", "v", 1));
    CHECK_OK(state_set(b2, "k1", "v", 1));

    CHECK_OK(state_bucket_names(st, &names));
    CHECK(names.len == 2);
    if (names.len == 2) {
        CHECK(strcmp(names.items[0], "alpha") == 0 && strcmp(names.items[1], "beta") == 0);
    }
    CHECK(names.struct_size == sizeof names);
    state_strings_free(&names);
    CHECK(names.items == NULL && names.len == 0);
    state_strings_free(&names);
    /* A struct_size short of this library's state_strings: refused, nothing written. */
    old_names.items = SENTINEL;
    CHECK_RC(state_bucket_names(st, &old_names), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "names->struct_size"));
    CHECK(old_names.items == SENTINEL);

    CHECK_OK(state_set_with_ttl(b2, "t", "v", 1, 3600000));
    CHECK_OK(state_store_info(st, &info));
    CHECK(info.struct_size == sizeof info);
    CHECK(info.records == 4 && info.buckets == 2 && info.expiring == 1);
    CHECK(strcmp(info.engine, "sled") == 0);
    CHECK(contains(info.path, "buckets"));
    CHECK(info.engine_details == NULL);
    state_info_free(&info);
    CHECK(info.path == NULL && info.engine == NULL);
    state_info_free(&info);
    CHECK_OK(state_delete(b2, "t", NULL));
    /* A struct_size short of this library's state_info is refused, nothing written. */
    CHECK_RC(state_store_info(st, &old_caller), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "struct_size"));
    CHECK(old_caller.path == NULL);

    CHECK_OK(state_bucket_remove(st, "beta", &existed));
    CHECK(existed == true);
    CHECK_OK(state_bucket_remove(st, "beta", &existed));
    CHECK(existed == false);
    CHECK_OK(state_bucket_remove(st, "never", NULL));
    CHECK_OK(state_bucket_names(st, &names));
    CHECK(names.len == 1);
    state_strings_free(&names);
    /* The removed bucket's handle still works; it is just empty. */
    CHECK_OK(state_set(b1, "again", "v", 1));

    /* Bucket name rules. */
    CHECK_RC(state_bucket_open(st, NULL, &b), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_bucket_open(st, "", &b), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "bucket name must not be empty"));
    CHECK_RC(state_bucket_open(st, "tab\there", &b), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "control character"));
    memset(long_name, 'n', 256);
    long_name[256] = 0;
    CHECK_RC(state_bucket_open(st, long_name, &b), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "255"));
    CHECK_RC(state_bucket_open(st, "\xc0\x80", &b), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_bucket_open(st, "ok", NULL), STATE_INVALID_ARGUMENT);
    CHECK(b == SENTINEL);
    CHECK_RC(state_bucket_remove(st, NULL, &existed), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_bucket_remove(st, "", &existed), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_bucket_names(st, NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_store_info(st, NULL), STATE_INVALID_ARGUMENT);

    CHECK_OK(state_bucket_close(b1));
    CHECK_OK(state_bucket_close(b2));
    CHECK_OK(state_close(st));
}

static int entry_is(const state_entry *e, const char *key, const char *value) {
    return e->key_len == strlen(key) && strcmp(e->key, key) == 0 &&
           e->value_len == strlen(value) && memcmp(e->value, value, e->value_len) == 0;
}

static void test_cursor(void) {
    state_store *st = open_store("cursor");
    state_bucket *b, *empty;
    state_cursor *c, *ce;
    state_entry e;
    state_entries list = {.struct_size = sizeof list};
    state_kv items[4] = {{"b", "2", 1}, {"d", "4", 1}, {"f", "6", 1}, {"h", "8", 1}};

    CHECK_OK(state_bucket_open(st, "c", &b));
    CHECK_OK(state_bucket_open(st, "empty", &empty));
    CHECK_OK(state_set_multiple(b, items, 4));
    CHECK_OK(state_cursor_open(b, &c));

    /* A new cursor stands before the first entry. */
    CHECK_RC(state_cursor_prev(c, &e), STATE_NOT_FOUND);
    CHECK_OK(state_cursor_next(c, &e));
    CHECK(entry_is(&e, "b", "2"));
    state_entry_free(&e);
    CHECK(e.key == NULL && e.value == NULL);
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
    e.key = SENTINEL;
    CHECK_RC(state_cursor_next(c, &e), STATE_NOT_FOUND); /* now after-last */
    CHECK(e.key == SENTINEL);
    CHECK_RC(state_cursor_next(c, &e), STATE_NOT_FOUND);
    CHECK_OK(state_cursor_prev(c, &e)); /* from after-last: the last entry */
    CHECK(entry_is(&e, "h", "8"));
    state_entry_free(&e);
    CHECK_OK(state_cursor_first(c, &e));
    CHECK(entry_is(&e, "b", "2"));
    state_entry_free(&e);

    /* seek: the first key >= k, present or not. */
    CHECK_OK(state_cursor_seek(c, "d", &e));
    CHECK(entry_is(&e, "d", "4"));
    state_entry_free(&e);
    CHECK_OK(state_cursor_seek(c, "e", &e));
    CHECK(entry_is(&e, "f", "6"));
    state_entry_free(&e);
    CHECK_OK(state_cursor_seek(c, "a", &e));
    CHECK(entry_is(&e, "b", "2"));
    state_entry_free(&e);
    CHECK_RC(state_cursor_seek(c, "z", &e), STATE_NOT_FOUND);
    CHECK_OK(state_cursor_prev(c, &e)); /* seek past the end leaves it after-last */
    CHECK(entry_is(&e, "h", "8"));
    state_entry_free(&e);

    /* next_n / prev_n: exactly n steps, in the direction of travel. */
    CHECK_OK(state_cursor_first(c, &e));
    state_entry_free(&e);
    CHECK_OK(state_cursor_next_n(c, 2, &list));
    CHECK(list.len == 2);
    if (list.len == 2) {
        CHECK(entry_is(STATE_ENTRY_AT(&list, 0), "d", "4") && entry_is(STATE_ENTRY_AT(&list, 1), "f", "6"));
    }
    state_entries_free(&list);
    CHECK_OK(state_cursor_next_n(c, 10, &list)); /* fewer: end reached */
    CHECK(list.len == 1 && entry_is(STATE_ENTRY_AT(&list, 0), "h", "8"));
    state_entries_free(&list);
    CHECK_OK(state_cursor_next_n(c, 10, &list));
    CHECK(list.len == 0 && list.items == NULL);
    state_entries_free(&list);
    CHECK_OK(state_cursor_prev_n(c, 3, &list));
    CHECK(list.len == 3);
    if (list.len == 3) {
        CHECK(entry_is(STATE_ENTRY_AT(&list, 0), "h", "8") && entry_is(STATE_ENTRY_AT(&list, 1), "f", "6") &&
              entry_is(STATE_ENTRY_AT(&list, 2), "d", "4"));
    }
    state_entries_free(&list);
    CHECK_OK(state_cursor_prev_n(c, 0, &list)); /* n == 0: no move */
    CHECK(list.len == 0);
    state_entries_free(&list);
    CHECK_OK(state_cursor_prev_n(c, 5, &list));
    CHECK(list.len == 1 && entry_is(STATE_ENTRY_AT(&list, 0), "b", "2"));
    state_entries_free(&list);

    /* A cursor steps by key, so it stays valid while the bucket changes. */
    CHECK_OK(state_cursor_seek(c, "d", &e));
    state_entry_free(&e);
    CHECK_OK(state_delete(b, "d", NULL));
    CHECK_OK(state_set(b, "e", "5", 1));
    CHECK_OK(state_cursor_next(c, &e));
    CHECK(entry_is(&e, "e", "5"));
    state_entry_free(&e);

    /* Empty bucket. */
    CHECK_OK(state_cursor_open(empty, &ce));
    CHECK_RC(state_cursor_first(ce, &e), STATE_NOT_FOUND);
    CHECK_RC(state_cursor_last(ce, &e), STATE_NOT_FOUND);
    CHECK_OK(state_cursor_close(ce));

    /* Argument errors. */
    CHECK_RC(state_cursor_open(b, NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_first(c, NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_last(c, NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_next(c, NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_prev(c, NULL), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "entry is NULL"));
    CHECK_RC(state_cursor_seek(c, NULL, &e), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_seek(c, "", &e), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_seek(c, "\xff", &e), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_seek(c, "a", NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_next_n(c, 1, NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_prev_n(c, 1, NULL), STATE_INVALID_ARGUMENT);

    CHECK_OK(state_cursor_close(c));
    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_bucket_close(empty));
    CHECK_OK(state_close(st));
}

static void test_ttl(void) {
    state_store *st = open_store("ttl");
    state_bucket *b;
    state_cursor *c;
    state_entry e;
    int64_t ms = 12345;
    bool had = false;
    uint8_t *v;
    size_t n;
    state_kv items[2] = {{"m1", "1", 1}, {"m2", "2", 1}};
    state_kv bad[1] = {{NULL, "1", 1}};

    CHECK_OK(state_bucket_open(st, "t", &b));

    /* A key with a TTL reports its remaining time. */
    CHECK_OK(state_set_with_ttl(b, "session", "abc", 3, 60000));
    CHECK_OK(state_ttl(b, "session", &ms));
    CHECK(ms > 0 && ms <= 60000);
    CHECK_OK(state_get(b, "session", &v, &n));
    state_free(v);

    /* set clears the TTL; a key without one reports STATE_NO_EXPIRY. */
    CHECK_OK(state_set(b, "session", "abc", 3));
    CHECK_OK(state_ttl(b, "session", &ms));
    CHECK(ms == STATE_NO_EXPIRY);

    /* expire / persist. */
    CHECK_OK(state_expire(b, "session", 30000));
    CHECK_OK(state_ttl(b, "session", &ms));
    CHECK(ms > 0 && ms <= 30000);
    CHECK_OK(state_persist(b, "session", &had));
    CHECK(had == true);
    CHECK_OK(state_persist(b, "session", &had));
    CHECK(had == false);
    CHECK_OK(state_persist(b, "missing", NULL));
    CHECK_RC(state_expire(b, "missing", 1000), STATE_NOT_FOUND);
    ms = 777;
    CHECK_RC(state_ttl(b, "missing", &ms), STATE_NOT_FOUND);
    CHECK(ms == 777);

    /* A batch with one TTL for every key. */
    CHECK_OK(state_set_multiple_with_ttl(b, items, 2, 60000));
    CHECK_OK(state_ttl(b, "m2", &ms));
    CHECK(ms > 0 && ms <= 60000);

    /* An expired key is invisible to every read. */
    CHECK_OK(state_set_with_ttl(b, "flash", "x", 1, 40));
    usleep(120 * 1000);
    CHECK_RC(state_get(b, "flash", &v, &n), STATE_NOT_FOUND);
    CHECK_RC(state_ttl(b, "flash", &ms), STATE_NOT_FOUND);
    CHECK_RC(state_expire(b, "flash", 1000), STATE_NOT_FOUND);
    CHECK_OK(state_cursor_open(b, &c));
    CHECK_OK(state_cursor_seek(c, "f", &e));
    CHECK(strcmp(e.key, "m1") == 0);
    state_entry_free(&e);
    CHECK_OK(state_cursor_close(c));

    /* Zero or negative TTLs are invalid arguments; nothing is written. */
    CHECK_RC(state_set_with_ttl(b, "z", "1", 1, 0), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "TTL must be positive"));
    CHECK_RC(state_set_with_ttl(b, "z", "1", 1, -5), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get(b, "z", &v, &n), STATE_NOT_FOUND);
    CHECK_RC(state_set_multiple_with_ttl(b, items, 2, 0), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_expire(b, "session", 0), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_expire(b, "session", -1), STATE_INVALID_ARGUMENT);
    CHECK_OK(state_ttl(b, "session", &ms));
    CHECK(ms == STATE_NO_EXPIRY);

    /* Argument errors. */
    CHECK_RC(state_set_with_ttl(b, NULL, "1", 1, 10), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set_with_ttl(b, "", "1", 1, 10), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set_with_ttl(b, "k", NULL, 1, 10), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set_multiple_with_ttl(b, NULL, 1, 10), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_set_multiple_with_ttl(b, bad, 1, 10), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "items[0].key is NULL"));
    CHECK_OK(state_set_multiple_with_ttl(b, NULL, 0, 10));
    CHECK_RC(state_expire(b, NULL, 10), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_expire(b, "\xff", 10), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_persist(b, NULL, &had), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_persist(b, "", &had), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_ttl(b, NULL, &ms), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_ttl(b, "session", NULL), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "remaining_ms is NULL"));

    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_close(st));
}

static void test_service(void) {
    state_store *st = open_store("service");
    state_service *svc, *s2 = SENTINEL;
    char *r = SENTINEL;
    size_t n = 0;

    CHECK_OK(state_service_open(st, &svc));
    CHECK_OK(state_service_handle(svc, "alice", "set", "{\"key\":\"k\",\"value\":\"aGk=\"}", &r, &n));
    CHECK(strcmp(r, "{}") == 0 && n == 2);
    state_free(r);
    CHECK_OK(state_service_handle(svc, "alice", "get", "{\"key\":\"k\"}", &r, &n));
    CHECK(strcmp(r, "{\"key\":\"k\",\"found\":true,\"value\":\"aGk=\"}") == 0 && n == strlen(r));
    state_free(r);
    /* Another client cannot see alice's state. */
    CHECK_OK(state_service_handle(svc, "bob", "get", "{\"key\":\"k\"}", &r, &n));
    CHECK(strcmp(r, "{\"key\":\"k\",\"found\":false,\"value\":null}") == 0);
    state_free(r);
    CHECK_OK(state_service_handle(svc, "alice", "setMultiple", "{\"kv\":{\"a\":\"MQ==\",\"b\":\"Mg==\"}}", &r, &n));
    state_free(r);
    CHECK_OK(state_service_handle(svc, "alice", "getMultiple", "{\"keys\":[\"a\",\"zz\",\"b\"]}", &r, &n));
    CHECK(strcmp(r, "{\"kv\":{\"a\":\"MQ==\",\"b\":\"Mg==\"}}") == 0);
    state_free(r);
    CHECK_OK(state_service_handle(svc, "alice", "expire", "{\"key\":\"b\",\"ttlMs\":60000}", &r, &n));
    CHECK(strcmp(r, "{\"key\":\"b\",\"found\":true}") == 0);
    state_free(r);
    CHECK_OK(state_service_handle(svc, "alice", "delete", "{\"key\":\"a\"}", &r, &n));
    CHECK(strcmp(r, "{\"key\":\"a\",\"found\":true}") == 0);
    state_free(r);

    r = SENTINEL;
    CHECK_RC(state_service_handle(svc, "alice", "fly", "{}", &r, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "fly"));
    CHECK_RC(state_service_handle(svc, "alice", "get", "{not json", &r, &n), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "malformed"));
    CHECK_RC(state_service_handle(svc, "", "get", "{\"key\":\"k\"}", &r, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_service_handle(svc, NULL, "get", "{}", &r, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_service_handle(svc, "alice", NULL, "{}", &r, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_service_handle(svc, "alice", "get", NULL, &r, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_service_handle(svc, "alice", "get", "{\"key\":\"k\"}", NULL, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_service_handle(svc, "alice", "get", "{\"key\":\"k\"}", &r, NULL), STATE_INVALID_ARGUMENT);
    CHECK(r == SENTINEL);
    CHECK_RC(state_service_open(st, NULL), STATE_INVALID_ARGUMENT);
    CHECK(s2 == SENTINEL);

    CHECK_OK(state_service_close(svc));
    CHECK_OK(state_close(st));
}

static void test_closed_and_invalid_handles(void) {
    state_store *st = open_store("closed");
    state_bucket *b;
    state_cursor *c;
    state_service *svc;
    state_entry e;
    state_entries list = {.struct_size = sizeof list};
    state_strings names = {.struct_size = sizeof names};
    state_info info = {.struct_size = sizeof info};
    uint8_t *v;
    size_t n;
    char *r;
    bool existed;
    const char *keys[] = {"k"};
    state_kv kv[1] = {{"k", "v", 1}};
    state_store *bogus = (state_store *)(uintptr_t)(UINTPTR_MAX - 7);
    int64_t ttl_ms;

    CHECK_OK(state_bucket_open(st, "b", &b));
    CHECK_OK(state_cursor_open(b, &c));
    CHECK_OK(state_service_open(st, &svc));

    /* Handles of the wrong type and values that never were handles. */
    CHECK_RC(state_flush((state_store *)(void *)b), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "is a bucket handle, not a store handle"));
    CHECK_RC(state_close((state_store *)(void *)c), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get((state_bucket *)(void *)st, "k", &v, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_close((state_cursor *)(void *)svc), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_flush(bogus), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "not a store handle"));
    CHECK_RC(state_flush(NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_close(NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_bucket_close(NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_close(NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_service_close(NULL), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_get(NULL, "k", &v, &n), STATE_INVALID_ARGUMENT);
    CHECK_RC(state_cursor_next(NULL, &e), STATE_INVALID_ARGUMENT);
    /* None of that closed anything. */
    CHECK_OK(state_set(b, "k", "v", 1));

    /* Closing the store: everything from it reports closed. */
    CHECK_OK(state_close(st));
    CHECK_RC(state_close(st), STATE_CLOSED); /* double close */
    CHECK(contains(state_last_error_message(), "closed"));
    CHECK_RC(state_flush(st), STATE_CLOSED);
    CHECK_RC(state_store_info(st, &info), STATE_CLOSED);
    CHECK_RC(state_bucket_names(st, &names), STATE_CLOSED);
    CHECK_RC(state_bucket_remove(st, "b", &existed), STATE_CLOSED);
    CHECK_RC(state_bucket_open(st, "b", &b), STATE_CLOSED);
    CHECK_RC(state_service_open(st, &svc), STATE_CLOSED);
    CHECK_RC(state_get(b, "k", &v, &n), STATE_CLOSED);
    CHECK_RC(state_set(b, "k", "v", 1), STATE_CLOSED);
    CHECK_RC(state_delete(b, "k", &existed), STATE_CLOSED);
    CHECK_RC(state_get_multiple(b, keys, 1, &list), STATE_CLOSED);
    CHECK_RC(state_set_multiple(b, kv, 1), STATE_CLOSED);
    CHECK_RC(state_cursor_open(b, &c), STATE_CLOSED);
    CHECK_RC(state_cursor_first(c, &e), STATE_CLOSED);
    CHECK_RC(state_cursor_last(c, &e), STATE_CLOSED);
    CHECK_RC(state_cursor_next(c, &e), STATE_CLOSED);
    CHECK_RC(state_cursor_prev(c, &e), STATE_CLOSED);
    CHECK_RC(state_cursor_seek(c, "k", &e), STATE_CLOSED);
    CHECK_RC(state_cursor_next_n(c, 3, &list), STATE_CLOSED);
    CHECK_RC(state_cursor_prev_n(c, 3, &list), STATE_CLOSED);
    CHECK_RC(state_service_handle(svc, "a", "get", "{\"key\":\"k\"}", &r, &n), STATE_CLOSED);
    CHECK_RC(state_set_with_ttl(b, "k", "v", 1, 10), STATE_CLOSED);
    CHECK_RC(state_set_multiple_with_ttl(b, kv, 1, 10), STATE_CLOSED);
    CHECK_RC(state_expire(b, "k", 10), STATE_CLOSED);
    CHECK_RC(state_persist(b, "k", &existed), STATE_CLOSED);
    CHECK_RC(state_ttl(b, "k", &ttl_ms), STATE_CLOSED);

    /* Handles from a closed store still need (and accept) one close each... */
    CHECK_OK(state_cursor_close(c));
    CHECK_OK(state_bucket_close(b));
    CHECK_OK(state_service_close(svc));
    /* ...and a second close of each is an error, never a crash. */
    CHECK_RC(state_cursor_close(c), STATE_CLOSED);
    CHECK_RC(state_bucket_close(b), STATE_CLOSED);
    CHECK_RC(state_service_close(svc), STATE_CLOSED);
    CHECK(contains(state_last_error_message(), "service is a closed handle"));
    /* And using a closed bucket handle says so. */
    CHECK_RC(state_get(b, "k", &v, &n), STATE_CLOSED);
    CHECK(contains(state_last_error_message(), "bucket is a closed handle"));
    CHECK_RC(state_cursor_next(c, &e), STATE_CLOSED);
}


static void count_progress(void *ctx, uint64_t records_done) {
    *(uint64_t *)ctx = records_done;
}

static void test_check_compact_export_import(void) {
    state_store *st = open_store("maint");
    state_store *st2 = open_store("maint-copy");
    state_bucket *b, *b2;
    state_check_report rep = {.struct_size = sizeof rep};
    state_compact_report comp = {.struct_size = sizeof comp};
    state_compact_report short_comp = {.struct_size = sizeof comp - 8};
    uint64_t seen = 0, records = 0;
    uint8_t *v;
    size_t n;
    int64_t ms;
    char file[512], bad[512];
    int i;
    FILE *f;

    CHECK_OK(state_bucket_open(st, "b", &b));
    for (i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%02d", i);
        CHECK_OK(state_set(b, key, (const uint8_t *)"value", 5));
    }
    CHECK_OK(state_set_with_ttl(b, "session", (const uint8_t *)"t", 1, 3600000));

    CHECK_OK(state_check(st, &rep));
    CHECK(rep.buckets == 1 && rep.records == 51 && rep.with_ttl == 1);
    CHECK(rep.problem_count == 0 && rep.problems_len == 0 && rep.problems[0] == '\0');
    state_check_report_free(&rep);
    CHECK(rep.problems == NULL);
    state_check_report_free(&rep);
    CHECK_RC(state_check(st, NULL), STATE_INVALID_ARGUMENT);

    CHECK_OK(state_compact(st, &comp));
    CHECK(comp.records == 51 && comp.buckets == 1 && comp.after_bytes > 0);
    CHECK_OK(state_compact(st, NULL));
    CHECK_RC(state_compact(st, &short_comp), STATE_INVALID_ARGUMENT);
    CHECK_OK(state_get(b, "k07", &v, &n));
    CHECK(n == 5);
    state_free(v);

    path_in(file, sizeof file, "dump.jsonl");
    CHECK_OK(state_export(st, file, STATE_FORMAT_JSON_LINES, count_progress, &seen, &records));
    CHECK(records == 51 && seen == 51);
    CHECK_RC(state_export(st, file, 7, NULL, NULL, NULL), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "format 7"));
    CHECK_OK(state_import(st2, file, STATE_FORMAT_JSON_LINES, NULL, NULL, &records));
    CHECK(records == 51);
    CHECK_OK(state_bucket_open(st2, "b", &b2));
    CHECK_OK(state_ttl(b2, "session", &ms));
    CHECK(ms > 3500000 && ms <= 3600000);

    path_in(file, sizeof file, "dump.json");
    CHECK_OK(state_export(st, file, STATE_FORMAT_JSON, NULL, NULL, NULL));
    CHECK_OK(state_import(st2, file, STATE_FORMAT_JSON, NULL, NULL, NULL));

    path_in(bad, sizeof bad, "bad.jsonl");
    f = fopen(bad, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("{\"bucket\":\"b\",\"key\":\"x\",\"value\":\"MQ==\"}\n{\"bucket\":\"b\"}\n", f);
        fclose(f);
    }
    CHECK_RC(state_import(st2, bad, STATE_FORMAT_JSON_LINES, NULL, NULL, NULL),
             STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "line 2"));
    path_in(bad, sizeof bad, "missing.json");
    CHECK_RC(state_import(st2, bad, STATE_FORMAT_JSON, NULL, NULL, NULL), STATE_IO);
    CHECK_RC(state_import(st2, NULL, STATE_FORMAT_JSON, NULL, NULL, NULL), STATE_INVALID_ARGUMENT);

    state_bucket_close(b2);
    state_bucket_close(b);
    CHECK_OK(state_close(st2));
    CHECK_OK(state_close(st));
    CHECK_RC(state_check(st, &rep), STATE_CLOSED);
    CHECK_RC(state_compact(st, NULL), STATE_CLOSED);
}

static void test_backup_of_an_open_store(void) {
    state_store *st = open_store("live");
    state_store *copy = NULL;
    state_bucket *b, *cb;
    state_backup_report rep = {.struct_size = sizeof rep};
    state_check_report chk = {.struct_size = sizeof chk};
    char dest[512], inner[512];
    uint8_t *v;
    size_t n;
    int i;

    CHECK_OK(state_bucket_open(st, "b", &b));
    for (i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        CHECK_OK(state_set(b, key, (const uint8_t *)"value", 5));
    }
    path_in(dest, sizeof dest, "live-backup");
    CHECK_OK(state_backup(st, dest, &rep));
    CHECK(rep.buckets == 1 && rep.records == 100 && rep.bytes > 0);
    /* The store stays open and writable; the copy does not see later writes. */
    CHECK_OK(state_set(b, "after", (const uint8_t *)"x", 1));
    CHECK_RC(state_backup(st, dest, NULL), STATE_IO);
    CHECK(contains(state_last_error_message(), "already exists"));
    CHECK_RC(state_backup(st, NULL, NULL), STATE_INVALID_ARGUMENT);
    path_in(inner, sizeof inner, "live/inside");
    CHECK_RC(state_backup(st, inner, NULL), STATE_INVALID_ARGUMENT);

    CHECK_OK(state_open(dest, NULL, &copy));
    CHECK_OK(state_check(copy, &chk));
    CHECK(chk.problem_count == 0 && chk.records == 100);
    state_check_report_free(&chk);
    CHECK_OK(state_bucket_open(copy, "b", &cb));
    CHECK_OK(state_get(cb, "k042", &v, &n));
    CHECK(n == 5);
    state_free(v);
    CHECK_RC(state_get(cb, "after", &v, &n), STATE_NOT_FOUND);
    state_bucket_close(cb);
    CHECK_OK(state_close(copy));
    state_bucket_close(b);
    CHECK_OK(state_close(st));
    CHECK_RC(state_backup(st, dest, NULL), STATE_CLOSED);
}

static void test_free_functions_accept_null(void) {
    state_free(NULL);
    state_entry_free(NULL);
    state_entries_free(NULL);
    state_strings_free(NULL);
    state_info_free(NULL);
    state_check_report_free(NULL);
    CHECK(1);
}

struct thread_msg {
    char seen[256];
};

static void *other_thread_error(void *arg) {
    struct thread_msg *m = arg;
    state_bucket *b;
    state_bucket_open(NULL, "x", &b);
    snprintf(m->seen, sizeof m->seen, "%s", state_last_error_message());
    return NULL;
}

static void test_last_error_is_per_thread(void) {
    state_store *st = SENTINEL;
    pthread_t t;
    struct thread_msg m;
    CHECK_RC(state_open("", NULL, &st), STATE_INVALID_ARGUMENT);
    CHECK(contains(state_last_error_message(), "store path must not be empty"));
    CHECK(pthread_create(&t, NULL, other_thread_error, &m) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(contains(m.seen, "store is NULL"));
    /* This thread's message is unchanged by the other thread's failure. */
    CHECK(contains(state_last_error_message(), "store path must not be empty"));
}

int main(int argc, char **argv) {
    int rc;
    if (argc == 3 && strcmp(argv[1], "--hold") == 0) {
        return hold_store(argv[2]);
    }
    self_path = argv[0];
    if (test_dir_make(base_dir) != 0) {
        return 2;
    }
    fprintf(stderr, "test_api (libstate %s) in %s\n", state_version(), base_dir);
    RUN(test_version);
    RUN(test_status_str_names_every_code);
    RUN(test_last_error_starts_empty_and_names_argument);
    RUN(test_options);
    RUN(test_open_errors);
    RUN(test_locked_by_another_process);
    RUN(test_corrupt_store_is_reported_and_left_alone);
    RUN(test_same_directory_twice_shares_the_store);
    RUN(test_get_set_delete);
    RUN(test_get_with_lends_the_value);
    RUN(test_get_multiple_and_set_multiple);
    RUN(test_buckets_names_remove_info);
    RUN(test_cursor);
    RUN(test_ttl);
    RUN(test_service);
    RUN(test_closed_and_invalid_handles);
    RUN(test_check_compact_export_import);
    RUN(test_backup_of_an_open_store);
    RUN(test_free_functions_accept_null);
    RUN(test_last_error_is_per_thread);
    rc = check_summary("test_api");
    rm_tree(base_dir);
    return rc;
}
