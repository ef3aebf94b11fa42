/* The Redis engine through the C ABI: `state_open` with a redis URL (the server is
 * started and stopped by `make c-test-redis`; its URL is the first argument). */
#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *url;

static void set_get_delete_and_a_second_handle(void) {
    state_store *st = NULL, *other = NULL;
    state_bucket *b = NULL, *ob = NULL;
    uint8_t *val = NULL;
    size_t len = 0;
    bool existed = false;
    CHECK_OK(state_open(url, NULL, &st));
    CHECK_OK(state_bucket_open(st, "user1", &b));
    CHECK_OK(state_set(b, "layout", (const uint8_t *)"{\"cols\":3}", 10));
    CHECK_OK(state_get(b, "layout", &val, &len));
    CHECK(len == 10 && memcmp(val, "{\"cols\":3}", 10) == 0);
    state_free(val);
    CHECK_RC(state_get(b, "missing", &val, &len), STATE_NOT_FOUND);
    /* Another open of the same URL (as another process would): no lock, same data. */
    CHECK_OK(state_open(url, NULL, &other));
    CHECK_OK(state_bucket_open(other, "user1", &ob));
    CHECK_OK(state_get(ob, "layout", &val, &len));
    CHECK(len == 10);
    state_free(val);
    CHECK_OK(state_delete(ob, "layout", &existed));
    CHECK(existed);
    CHECK_RC(state_get(b, "layout", &val, &len), STATE_NOT_FOUND);
    state_bucket_close(ob);
    state_bucket_close(b);
    CHECK_OK(state_close(other));
    CHECK_OK(state_close(st));
}

static void the_redis_engine_needs_a_url(void) {
    state_options opts;
    state_store *st = NULL;
    state_options_init(&opts, sizeof opts);
    opts.engine = "redis";
    CHECK_RC(state_open("not-a-url-dir", &opts, &st), STATE_INVALID_ARGUMENT);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s REDIS_URL\n", argv[0]);
        return 2;
    }
    url = argv[1];
    RUN(set_get_delete_and_a_second_handle);
    RUN(the_redis_engine_needs_a_url);
    return check_summary("test_redis");
}
