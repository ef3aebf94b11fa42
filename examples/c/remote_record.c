/* The original state service's example over `state serve`, from C: a typed record
 * Put, then Get (`stateClient.Put("mykey", &myRecord)` /
 * `stateClient.Get("mykey", &myRecord)`), stored as the same JSON the Rust and
 * Python examples store (examples/rust typed_record, examples/python/remote_record.py).
 *
 *   remote_record [URL]
 *
 * URL is e.g. state+unix:///srv/app/state-data/state.sock; without one it connects
 * to the default store's socket ($STATE_STORE/state.sock, else
 * ./state-data/state.sock) of a running `state serve`. */
#include <state.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MyData: the typed record. */
typedef struct {
    char name[64];
    int columns;
    char widgets[4][32];
    int n_widgets;
} my_data;

/* The record as JSON ({"name":"...","columns":N,"widgets":["...",...]}); the strings
 * of this example need no escaping. Returns the length, or -1 if it does not fit. */
static int to_json(const my_data *d, char *out, size_t size) {
    size_t len;
    int i, n = snprintf(out, size, "{\"name\":\"%s\",\"columns\":%d,\"widgets\":[", d->name,
                        d->columns);
    for (i = 0; i < d->n_widgets && n > 0 && (size_t)n < size; i++)
        n += snprintf(out + n, size - (size_t)n, "%s\"%s\"", i ? "," : "", d->widgets[i]);
    if (n < 0 || (size_t)n + 3 > size) return -1;
    len = (size_t)n;
    memcpy(out + len, "]}", 3);
    return (int)len + 2;
}

/* Reads back what to_json wrote. 0, or -1 if `json` is not such a record. */
static int from_json(const char *json, my_data *d) {
    const char *p;
    int used = 0;
    memset(d, 0, sizeof *d);
    if (sscanf(json, "{\"name\":\"%63[^\"]\",\"columns\":%d,\"widgets\":[%n", d->name,
               &d->columns, &used) != 2 || used == 0)
        return -1;
    for (p = json + used; *p == '"' && d->n_widgets < 4; d->n_widgets++) {
        if (sscanf(p, "\"%31[^\"]\"%n", d->widgets[d->n_widgets], &used) != 1) return -1;
        p += used;
        if (*p == ',') p++;
    }
    return strcmp(p, "]}") == 0 ? 0 : -1;
}

static int fail(const char *what, state_status rc) {
    fprintf(stderr, "remote_record: %s: %s: %s\n", what, state_status_str(rc),
            state_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    my_data record = {"dashboard", 3, {"clock", "weather"}, 2}, found;
    char json[512];
    uint8_t *value;
    size_t len;
    int n;
    state_bucket *b;
    /* The one line that differs from the embedded program
     * (state_open("state-data", NULL, &st); state_bucket_open(st, "user1", &b);). */
    state_status rc = state_connect(argc > 1 ? argv[1] : NULL, NULL, &b);
    if (rc != STATE_OK) return fail("connect", rc);

    /* write record */
    n = to_json(&record, json, sizeof json);
    if (n < 0) return 1;
    rc = state_set(b, "mykey", json, (size_t)n);
    if (rc != STATE_OK) return fail("set", rc);

    /* read record */
    rc = state_get(b, "mykey", &value, &len);
    if (rc != STATE_OK) return fail("get", rc);
    n = from_json((const char *)value, &found); /* values carry a NUL after their bytes */
    state_free(value);
    if (n != 0 || memcmp(&found, &record, sizeof found) != 0) {
        fprintf(stderr, "remote_record: read back a different record\n");
        return 1;
    }
    printf("c/state_connect: put then got {name: %s, columns: %d, widgets: [%s, %s]}\n",
           found.name, found.columns, found.widgets[0], found.widgets[1]);
    state_bucket_close(b);
    return 0;
}
