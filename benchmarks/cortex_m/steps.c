/* Training steps timed on the emulated Cortex-M4 (benchmarks/bench_cortex_m.py): the generated
 * library of the network 'net', a batch in data.h (X, T, ROWS, STEPS). Under QEMU's -icount the
 * SysTick counter, on the processor clock, advances by a fixed number of instructions a tick:
 * a calibration loop of a known instruction count measures that number. Prints the ticks of the
 * calibration loop and of STEPS steps, as hexadecimal. */
#include <stdint.h>

#include "data.h"
#include "net.h"
#include "semihost.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define LOOPS 1000000u /* the calibration loop: 2 instructions an iteration */

static net_params params;
static net_state state;
static net_workspace ws;

/* Ticks elapsed from start (SysTick counts down, 24 bits) */
static uint32_t since(uint32_t start)
{
    return (start - SYST_CVR) & 0xFFFFFFu;
}

int main(void)
{
    uint32_t start, n = LOOPS;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enabled, processor clock, no interrupt */
    start = SYST_CVR;
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    put_hex(since(start), 8);
    net_init_params(&params, NET_SEED);
    net_init_state(&state);
    net_step(&params, &state, &X[0][0], &T[0][0], ROWS, &ws); /* warm: nothing to warm, but fair */
    start = SYST_CVR;
    for (int s = 0; s < STEPS; ++s) net_step(&params, &state, &X[0][0], &T[0][0], ROWS, &ws);
    put_hex(since(start), 8);
    put_string("\n");
    return 0;
}
