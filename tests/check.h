/* A tiny assertion kit for the libstate C tests: CHECK keeps going and counts
 * failures; CHECK_RC compares a status and prints libstate's message on mismatch. */
#ifndef STATE_TEST_CHECK_H
#define STATE_TEST_CHECK_H

#include <state.h>

#include <stdio.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        check_count++;                                                                 \
        if (!(cond)) {                                                                 \
            check_failures++;                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__,     \
                    __LINE__, #cond, state_last_error_message());                      \
        }                                                                              \
    } while (0)

#define CHECK_RC(call, expected)                                                       \
    do {                                                                               \
        state_status rc_ = (call);                                                     \
        check_count++;                                                                 \
        if (rc_ != (expected)) {                                                       \
            check_failures++;                                                          \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n",    \
                    __FILE__, __LINE__, #call, state_status_str((int)rc_),             \
                    state_status_str((int)(expected)), state_last_error_message());    \
        }                                                                              \
    } while (0)

#define CHECK_OK(call) CHECK_RC(call, STATE_OK)

#define RUN(test)                                                                      \
    do {                                                                               \
        fprintf(stderr, "  %s\n", #test);                                              \
        test();                                                                        \
    } while (0)

static int check_summary(const char *suite) {
    fprintf(stderr, "%s: %d checks, %d failed\n", suite, check_count, check_failures);
    return check_failures == 0 ? 0 : 1;
}

#endif
