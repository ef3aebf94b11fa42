/* C API benchmark (opt-in: `make bench-c`): Get 1 / Set 1 / Set Multiple 1000 on a
 * store of 100K records, the original state service's workload (random 10-character
 * keys, 100-byte values). ffi/examples/bench_rust.rs runs the same workload, with the
 * same key sequence, through the Rust API; the difference is the C ABI's cost per call.
 * Usage: bench STORE_DIR */
#include <state.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORDS 100000
#define ROUNDS 7
#define KEY_LEN 10
#define VALUE_LEN 100

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

/* xorshift64*: the same generator as bench_rust.rs, so both see the same keys. */
static uint64_t next_rand(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static char keys[RECORDS][KEY_LEN + 1];
static uint8_t value[VALUE_LEN];

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "bench: %s: %s\n", what, state_last_error_message());
    exit(1);
}

static void report(const char *name, double *per_op, const char *unit, double scale) {
    qsort(per_op, ROUNDS, sizeof *per_op, cmp_double);
    printf("%-28s median %10.1f %s   (min %.1f, max %.1f; %d rounds)\n", name,
           per_op[ROUNDS / 2] / scale, unit, per_op[0] / scale, per_op[ROUNDS - 1] / scale,
           ROUNDS);
}

/* The lending read's callback: reads one byte, as a caller parsing the value would. */
static unsigned sink;
static void touch_first_byte(void *ctx, const uint8_t *value, size_t len) {
    *(unsigned *)ctx += len > 0 ? value[0] : 0;
}

int main(int argc, char **argv) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    state_store *st;
    state_bucket *b;
    static state_kv batch[1000];
    double per_op[ROUNDS];
    size_t i, j, r, len;
    state_options opts;
    uint8_t *v;

    if (argc != 2) {
        fprintf(stderr, "usage: %s STORE_DIR\n", argv[0]);
        return 2;
    }
    for (i = 0; i < RECORDS; i++) {
        for (j = 0; j < KEY_LEN; j++) {
            keys[i][j] = alphabet[next_rand() % (sizeof alphabet - 1)];
        }
        keys[i][KEY_LEN] = 0;
    }
    for (j = 0; j < VALUE_LEN; j++) {
        value[j] = (uint8_t)next_rand();
    }
    /* STATE_BENCH_ENGINE=memfile measures the memfile engine (default: sled). */
    state_options_init(&opts, sizeof opts);
    opts.engine = getenv("STATE_BENCH_ENGINE");
    if (state_open(argv[1], &opts, &st) != STATE_OK) die("open");
    if (state_bucket_open(st, "bench", &b) != STATE_OK) die("bucket");
    for (i = 0; i < RECORDS; i += 1000) {
        for (j = 0; j < 1000; j++) {
            batch[j].key = keys[i + j];
            batch[j].value = value;
            batch[j].value_len = VALUE_LEN;
        }
        if (state_set_multiple(b, batch, 1000) != STATE_OK) die("load");
    }
    printf("C API, %d records, libstate %s, engine %s\n", RECORDS, state_version(),
           opts.engine != NULL ? opts.engine : "sled");

    for (r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (i = 0; i < 50000; i++) {
            if (state_get(b, keys[(i * 7919) % RECORDS], &v, &len) != STATE_OK) die("get");
            state_free(v);
        }
        per_op[r] = (now_ns() - t0) / 50000;
    }
    report("Get 1", per_op, "ns", 1);

    for (r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (i = 0; i < 50000; i++) {
            if (state_get_with(b, keys[(i * 7919) % RECORDS], touch_first_byte, &sink) != STATE_OK)
                die("get_with");
        }
        per_op[r] = (now_ns() - t0) / 50000;
    }
    report("Get 1 (state_get_with, lent)", per_op, "ns", 1);

    for (r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (i = 0; i < 50000; i++) {
            if (state_get(b, "no-such-key", &v, &len) != STATE_NOT_FOUND) die("get missing");
        }
        per_op[r] = (now_ns() - t0) / 50000;
    }
    report("Get 1 (missing key)", per_op, "ns", 1);

    for (r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (i = 0; i < 20000; i++) {
            if (state_set(b, keys[(i * 104729 + r) % RECORDS], value, VALUE_LEN) != STATE_OK) die("set");
        }
        per_op[r] = (now_ns() - t0) / 20000;
    }
    report("Set 1", per_op, "ns", 1);

    for (r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (i = 0; i < 20; i++) {
            size_t base = ((r * 20 + i) * 1000) % RECORDS;
            for (j = 0; j < 1000; j++) {
                batch[j].key = keys[base + j];
            }
            if (state_set_multiple(b, batch, 1000) != STATE_OK) die("set_multiple");
        }
        per_op[r] = (now_ns() - t0) / 20;
    }
    report("Set Multiple 1000", per_op, "us", 1000);

    if (state_bucket_close(b) != STATE_OK || state_close(st) != STATE_OK) die("close");
    return 0;
}
