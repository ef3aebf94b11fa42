// Built by make dist-test through CMake's find_package(libstate): a C++ program that
// opens a store, writes and reads back a value, with handles in std::unique_ptr.
// Usage: cmake_check STORE_DIR
#include <state.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s STORE_DIR\n", argv[0]);
        return 2;
    }
    if (std::strcmp(state_version(), STATE_VERSION) != 0) {
        std::fprintf(stderr, "header %s, library %s\n", STATE_VERSION, state_version());
        return 1;
    }
    state_store *raw_store = nullptr;
    if (state_open(argv[1], nullptr, &raw_store) != STATE_OK) {
        std::fprintf(stderr, "libstate: %s\n", state_last_error_message());
        return 1;
    }
    std::unique_ptr<state_store, decltype(&state_close)> store(raw_store, state_close);
    state_bucket *raw_bucket = nullptr;
    if (state_bucket_open(store.get(), "cmake", &raw_bucket) != STATE_OK) {
        std::fprintf(stderr, "libstate: %s\n", state_last_error_message());
        return 1;
    }
    std::unique_ptr<state_bucket, decltype(&state_bucket_close)> bucket(raw_bucket,
                                                                        state_bucket_close);
    const std::string value = "{\"cols\":3}";
    uint8_t *got = nullptr;
    size_t len = 0;
    if (state_set(bucket.get(), "layout", value.data(), value.size()) != STATE_OK ||
        state_get(bucket.get(), "layout", &got, &len) != STATE_OK) {
        std::fprintf(stderr, "libstate: %s\n", state_last_error_message());
        return 1;
    }
    const bool same = std::string(reinterpret_cast<const char *>(got), len) == value;
    state_free(got);
    if (!same) {
        std::fprintf(stderr, "read back a different value\n");
        return 1;
    }
    std::printf("cmake_check: libstate %s via find_package: ok\n", state_version());
    return 0;
}
