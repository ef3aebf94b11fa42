/* Compiled alone, as C99 and as C++, with -Wall -Wextra -Werror -pedantic
 * (make c-header-check): the header must need nothing else. Included twice to
 * check its include guard. */
#include "state.h"
#include "state.h"

/* STATE_ENTRY_AT expands to valid C and C++. */
static const char *first_key(const state_entries *list) {
    return list->len > 0 ? STATE_ENTRY_AT(list, 0)->key : NULL;
}

int main(void) {
    state_entries list = {sizeof list, sizeof(state_entry), NULL, 0};
    return first_key(&list) != NULL;
}
