/* Compiled alone, as C99 and as C++, with -Wall -Wextra -Werror -pedantic
 * (make c-header-check): the header must need nothing else. Included twice to
 * check its include guard. */
#include "state.h"
#include "state.h"

int main(void) { return 0; }
