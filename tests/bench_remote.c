/* Opt-in benchmark (`make bench-c-remote`): a remote `state_get` (state_connect over
 * the Unix socket) against hiredis's GET on the same `state serve`, in the same run,
 * alternating rounds so both see the same machine; and a get_multiple of 1000 keys
 * against hiredis's MGET of the same keys.
 *
 *   bench_remote SOCKET [CALLS_PER_ROUND] [ROUNDS]
 *
 * Prints, per client, the median over rounds of each round's mean and of its p50
 * per-call latency, in microseconds. */
#include <hiredis/hiredis.h>
#include <state.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void die(const char *what) {
    fprintf(stderr, "bench_remote: %s (%s)\n", what, state_last_error_message());
    exit(1);
}

/* One round of `calls` gets of `key`: its mean and p50 per call (µs). */
static void round_state(state_bucket *b, const char *key, int calls, double *per_call,
                        double *mean, double *p50) {
    double start = now_us(), t;
    int i;
    for (i = 0; i < calls; i++) {
        uint8_t *v;
        size_t n;
        t = now_us();
        if (state_get(b, key, &v, &n) != STATE_OK || n != 100) die("state_get");
        state_free(v);
        per_call[i] = now_us() - t;
    }
    *mean = (now_us() - start) / calls;
    *p50 = median(per_call, calls);
}

static void round_hiredis(redisContext *c, const char *key, int calls, double *per_call,
                          double *mean, double *p50) {
    double start = now_us(), t;
    int i;
    for (i = 0; i < calls; i++) {
        redisReply *r;
        t = now_us();
        r = redisCommand(c, "GET %s", key);
        if (r == NULL || r->type != REDIS_REPLY_STRING || r->len != 100) die("hiredis GET");
        freeReplyObject(r);
        per_call[i] = now_us() - t;
    }
    *mean = (now_us() - start) / calls;
    *p50 = median(per_call, calls);
}

int main(int argc, char **argv) {
    char url[600], value[100], key[32];
    int calls = argc > 2 ? atoi(argv[2]) : 20000;
    int rounds = argc > 3 ? atoi(argv[3]) : 7;
    double *per_call, s_mean[64], s_p50[64], h_mean[64], h_p50[64], m_state[64], m_hiredis[64];
    const char *keys[1000];
    const char *argvs[1001];
    size_t lens[1001];
    char names[1000][16];
    state_bucket *b;
    redisContext *c;
    int r, i;

    if (argc < 2 || calls <= 0 || rounds <= 0 || rounds > 64) {
        fprintf(stderr, "usage: %s SOCKET [CALLS_PER_ROUND] [ROUNDS<=64]\n", argv[0]);
        return 2;
    }
    snprintf(url, sizeof url, "state+unix://%s", argv[1]);
    if (state_connect(url, NULL, &b) != STATE_OK) die("state_connect");
    c = redisConnectUnix(argv[1]);
    if (c == NULL || c->err) die("redisConnectUnix");
    memset(value, 'v', sizeof value);
    snprintf(key, sizeof key, "bench:key");
    if (state_set(b, key, value, sizeof value) != STATE_OK) die("state_set");
    argvs[0] = "MGET";
    lens[0] = 4;
    for (i = 0; i < 1000; i++) {
        snprintf(names[i], sizeof names[i], "m%04d", i);
        keys[i] = argvs[i + 1] = names[i];
        lens[i + 1] = strlen(names[i]);
        if (state_set(b, names[i], value, sizeof value) != STATE_OK) die("state_set");
    }
    per_call = malloc(sizeof *per_call * (size_t)calls);
    if (per_call == NULL) return 1;
    /* Warm-up: connections made, pages touched. */
    round_state(b, key, calls / 10 + 1, per_call, &s_mean[0], &s_p50[0]);
    round_hiredis(c, key, calls / 10 + 1, per_call, &h_mean[0], &h_p50[0]);

    for (r = 0; r < rounds; r++) {
        double t;
        int j;
        /* Alternate which goes first, so neither always runs after the other. */
        if (r % 2 == 0) {
            round_state(b, key, calls, per_call, &s_mean[r], &s_p50[r]);
            round_hiredis(c, key, calls, per_call, &h_mean[r], &h_p50[r]);
        } else {
            round_hiredis(c, key, calls, per_call, &h_mean[r], &h_p50[r]);
            round_state(b, key, calls, per_call, &s_mean[r], &s_p50[r]);
        }
        /* 1000 keys in one request each way, 20 times. */
        t = now_us();
        for (j = 0; j < 20; j++) {
            state_entries list = {.struct_size = sizeof list};
            if (state_get_multiple(b, keys, 1000, &list) != STATE_OK || list.len != 1000)
                die("state_get_multiple");
            state_entries_free(&list);
        }
        m_state[r] = (now_us() - t) / 20;
        t = now_us();
        for (j = 0; j < 20; j++) {
            redisReply *rep = redisCommandArgv(c, 1001, argvs, lens);
            if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 1000)
                die("hiredis MGET");
            freeReplyObject(rep);
        }
        m_hiredis[r] = (now_us() - t) / 20;
        fprintf(stderr, "round %d: state_get %.1f us (p50 %.1f), hiredis GET %.1f us (p50 %.1f)\n",
                r + 1, s_mean[r], s_p50[r], h_mean[r], h_p50[r]);
    }
    printf("remote get, 100-byte value, %d calls x %d rounds (median of rounds):\n", calls,
           rounds);
    printf("  state_get (state_connect, Unix socket)  mean %6.1f us   p50 %6.1f us\n",
           median(s_mean, rounds), median(s_p50, rounds));
    printf("  hiredis GET (same socket, same server)  mean %6.1f us   p50 %6.1f us\n",
           median(h_mean, rounds), median(h_p50, rounds));
    printf("get_multiple of 1000 keys (one request each):\n");
    printf("  state_get_multiple  %8.1f us\n", median(m_state, rounds));
    printf("  hiredis MGET        %8.1f us\n", median(m_hiredis, rounds));
    free(per_call);
    redisFree(c);
    state_bucket_close(b);
    return 0;
}
