/* libstate from C: the state of a small dashboard.
 *
 * A dashboard service keeps each user's layout in that user's bucket: a "layout"
 * record (columns, theme) and one "tile/<id>" record per tile. This program saves a
 * layout in one atomic batch, moves a tile, lists the tiles with a cursor, reads
 * several records at once, and answers a request through the JSON state service the
 * way the original HiveOT state service did.
 *
 * Build and run (done by `make`):
 *   cc -std=c99 dashboard.c $(pkg-config --cflags --libs state) -o dashboard
 *   ./dashboard state-data
 */
#include <state.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the failing call with libstate's message and exits. */
static void check(state_status rc, const char *what) {
    if (rc != STATE_OK) {
        fprintf(stderr, "dashboard: %s: %s (%s)\n", what, state_last_error_message(),
                state_status_str((int)rc));
        exit(1);
    }
}

/* Values are bytes; these records hold JSON text, so set them from C strings. */
static state_status set_text(state_bucket *b, const char *key, const char *json) {
    return state_set(b, key, json, strlen(json));
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "state-data";
    state_options opts;
    state_store *store;
    state_bucket *alice;
    state_cursor *cur;
    state_service *svc;
    state_entry e;
    state_entries list = {.struct_size = sizeof list};
    state_strings names = {.struct_size = sizeof names};
    state_info info = {.struct_size = sizeof info};
    uint8_t *value;
    size_t len, i;
    char *reply;
    state_status rc;

    printf("libstate %s (C API)\n", state_version());

    check(state_options_init(&opts, sizeof opts), "state_options_init");
    opts.flush_interval_ms = 200; /* durable within 200 ms */
    check(state_open(dir, &opts, &store), "state_open");
    check(state_bucket_open(store, "alice", &alice), "state_bucket_open");

    /* Save the whole layout at once: after a crash, all of it or none is there. */
    {
        static const char *tiles[][2] = {
            {"layout", "{\"cols\":3,\"theme\":\"dark\"}"},
            {"tile/clock", "{\"col\":0,\"row\":0,\"w\":1,\"h\":1}"},
            {"tile/news", "{\"col\":1,\"row\":0,\"w\":2,\"h\":1}"},
            {"tile/weather", "{\"col\":0,\"row\":1,\"w\":1,\"h\":2}"},
        };
        state_kv batch[4];
        for (i = 0; i < 4; i++) {
            batch[i].key = tiles[i][0];
            batch[i].value = tiles[i][1];
            batch[i].value_len = strlen(tiles[i][1]);
        }
        check(state_set_multiple(alice, batch, 4), "state_set_multiple");
    }

    /* The user drags the news tile to the second row. */
    check(set_text(alice, "tile/news", "{\"col\":1,\"row\":1,\"w\":2,\"h\":1}"), "state_set");

    check(state_get(alice, "layout", &value, &len), "state_get");
    printf("layout: %.*s\n", (int)len, (const char *)value);
    state_free(value);

    /* A missing key is STATE_NOT_FOUND, not an error. */
    rc = state_get(alice, "tile/stocks", &value, &len);
    printf("tile/stocks: %s\n", rc == STATE_NOT_FOUND ? "not on this dashboard" : "present");
    if (rc == STATE_OK) {
        state_free(value);
    } else if (rc != STATE_NOT_FOUND) {
        check(rc, "state_get");
    }

    /* List the tiles in key order: seek to the first key >= "tile/". */
    check(state_cursor_open(alice, &cur), "state_cursor_open");
    for (rc = state_cursor_seek(cur, "tile/", &e); rc == STATE_OK; rc = state_cursor_next(cur, &e)) {
        int is_tile = strncmp(e.key, "tile/", 5) == 0;
        if (is_tile) {
            printf("  %-14s %.*s\n", e.key, (int)e.value_len, (const char *)e.value);
        }
        state_entry_free(&e);
        if (!is_tile) {
            break;
        }
    }
    if (rc != STATE_OK && rc != STATE_NOT_FOUND) {
        check(rc, "state_cursor_next");
    }
    check(state_cursor_close(cur), "state_cursor_close");

    /* Read several records in one call; missing keys are simply absent. */
    {
        const char *keys[] = {"tile/clock", "tile/stocks", "layout"};
        check(state_get_multiple(alice, keys, 3, &list), "state_get_multiple");
        printf("get_multiple: %zu of 3 keys present:", list.len);
        for (i = 0; i < list.len; i++) {
            printf(" %s", STATE_ENTRY_AT(&list, i)->key);
        }
        printf("\n");
        state_entries_free(&list);
    }

    /* The same data through the state service's JSON messages (values in base64). */
    check(state_service_open(store, &svc), "state_service_open");
    check(state_service_handle(svc, "alice", "get", "{\"key\":\"layout\"}", &reply, &len),
          "state_service_handle");
    printf("service get -> %s\n", reply);
    state_free(reply);
    check(state_service_close(svc), "state_service_close");

    check(state_bucket_names(store, &names), "state_bucket_names");
    printf("buckets:");
    for (i = 0; i < names.len; i++) {
        printf(" %s", names.items[i]);
    }
    printf("\n");
    state_strings_free(&names);

    check(state_store_info(store, &info), "state_store_info");
    printf("store %s: engine %s, %llu records in %llu buckets\n", info.path, info.engine,
           (unsigned long long)info.records, (unsigned long long)info.buckets);
    state_info_free(&info);

    check(state_bucket_close(alice), "state_bucket_close");
    check(state_close(store), "state_close"); /* flushes */
    return 0;
}
