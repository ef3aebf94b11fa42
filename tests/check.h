/* What the libstate C tests share (each includes this header and uses the parts it
 * needs): a tiny assertion kit (CHECK keeps going and counts failures; CHECK_RC
 * compares a status and prints libstate's message on mismatch) and the test's
 * temporary directory (made by test_dir_make, removed whole by rm_tree). Built with
 * -D_GNU_SOURCE (nftw). */
#ifndef STATE_TEST_CHECK_H
#define STATE_TEST_CHECK_H

#include <state.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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

/* Makes the test's directory from `tmpl` (a path ending in XXXXXX, rewritten in
 * place by mkdtemp). 0, or -1 after printing why. */
static inline int test_dir_make(char *tmpl) {
    if (mkdtemp(tmpl) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

static inline int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Removes `dir` and everything below it (links are removed, not followed). */
static inline void rm_tree(const char *dir) {
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
