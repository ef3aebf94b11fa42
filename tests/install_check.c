/* Built by `make c-install-test` against an installed libstate, the way users do:
 *   cc install_check.c $(pkg-config --cflags --libs state)
 * Usage: install_check STORE_DIR */
#include <state.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    state_store *st;
    state_bucket *b;
    uint8_t *val;
    size_t len;
    int ok;

    if (argc != 2) {
        fprintf(stderr, "usage: %s STORE_DIR\n", argv[0]);
        return 2;
    }
    if (strcmp(state_version(), STATE_VERSION) != 0 ||
        state_version_number() != STATE_VERSION_NUMBER) {
        fprintf(stderr, "header %s does not match library %s\n", STATE_VERSION, state_version());
        return 1;
    }
    if (state_open(argv[1], NULL, &st) != STATE_OK ||
        state_bucket_open(st, "install", &b) != STATE_OK ||
        state_set(b, "k", "v", 1) != STATE_OK ||
        state_get(b, "k", &val, &len) != STATE_OK) {
        fprintf(stderr, "libstate: %s\n", state_last_error_message());
        return 1;
    }
    ok = len == 1 && val[0] == 'v';
    state_free(val);
    if (state_bucket_close(b) != STATE_OK || state_close(st) != STATE_OK || !ok) {
        fprintf(stderr, "libstate: %s\n", state_last_error_message());
        return 1;
    }
    printf("installed libstate %s works\n", state_version());
    return 0;
}
