/* A training run on the emulated Cortex-M4 (tests/test_cortex_m.py): the generated library of the
 * network 'net', its inference export, and a batch in data.h (X, T, ROWS, STEPS, written by the
 * test). Prints, as exact hexadecimal bits, one line each: the initial parameters, the loss before
 * each step, the final parameters, and the export's predictions for the rows of X (with its
 * built-in weights). Everything is static or on the stack: no heap. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "data.h"
#include "net.h"
#include "net_infer.h"
#include "semihost.h"

static net_params params;
static net_state state;
static net_workspace ws;

static void put_floats(const float *p, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        uint32_t bits;
        memcpy(&bits, &p[i], sizeof bits);
        put_hex(bits, 8);
    }
    put_string("\n");
}

static void put_params(void)
{
    put_floats((const net_real *)&params, sizeof params / sizeof(net_real));
}

int main(void)
{
    net_init_params(&params, NET_SEED);
    net_init_state(&state);
    /* no epoch: changes nothing, but links train (its sample order: static with NET_MAX_ROWS) */
    if (net_train(&params, &state, &X[0][0], &T[0][0], ROWS, 0, ROWS, 1, NET_SEED, NULL, NULL, NULL,
                  &ws) != 0)
        return 1;
    put_params();
    for (int s = 0; s < STEPS; ++s) {
        const double E = net_step(&params, &state, &X[0][0], &T[0][0], ROWS, &ws);
        uint64_t bits;
        memcpy(&bits, &E, sizeof bits);
        put_hex(bits, 16);
    }
    put_string("\n");
    put_params();
    for (int r = 0; r < ROWS; ++r) {
        float y[NET_INFER_OUTPUTS];
        net_predict(X[r], y);
        put_floats(y, NET_INFER_OUTPUTS);
    }
    return 0;
}
