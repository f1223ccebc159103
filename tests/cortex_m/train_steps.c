/* A training run on the emulated Cortex-M4 (tests/test_cortex_m.py): the generated library of the
 * network 'net' and a batch in data.h (X, T, ROWS, STEPS, written by the test). Prints, as exact
 * hexadecimal bits, the initial parameters, the loss before each step and the final parameters.
 * Everything is static: no heap. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "data.h"
#include "net.h"
#include "semihost.h"

static net_params params;
static net_state state;
static net_workspace ws;

static void put_params(void)
{
    const net_real *p = (const net_real *)&params;
    for (size_t i = 0; i < sizeof params / sizeof *p; ++i) {
        uint32_t bits;
        memcpy(&bits, &p[i], sizeof bits);
        put_hex(bits, 8);
    }
    put_string("\n");
}

int main(void)
{
    net_init_params(&params, NET_SEED);
    net_init_state(&state);
    put_params();
    for (int s = 0; s < STEPS; ++s) {
        const double E = net_step(&params, &state, &X[0][0], &T[0][0], ROWS, &ws);
        uint64_t bits;
        memcpy(&bits, &E, sizeof bits);
        put_hex(bits, 16);
    }
    put_string("\n");
    put_params();
    return 0;
}
