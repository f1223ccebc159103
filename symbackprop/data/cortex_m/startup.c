/* Startup for a Cortex-M4F under QEMU's mps2-an386 (with mps2_an386.ld): the vector table, then a
 * reset handler that enables the FPU, copies .data, zeroes .bss, calls main and exits through
 * semihosting with its status. No C library start files and no heap. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _data_load[], _data_start[], _data_end[], _bss_start[], _bss_end[];
extern uint32_t _stack_top[];
int main(void);

void reset_handler(void);
void fault_handler(void);

void reset_handler(void)
{
    /* CPACR: full access to the coprocessors CP10 and CP11 (the FPU), before any float code */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (uint32_t *s = _data_load, *d = _data_start; d < _data_end;) *d++ = *s++;
    for (uint32_t *d = _bss_start; d < _bss_end;) *d++ = 0;
    exit_board(main() == 0);
}

/* Any fault or unexpected interrupt: report it and stop (status 1 to QEMU) */
void fault_handler(void)
{
    put_string("fault\n");
    exit_board(0);
}

/* Initial stack pointer, reset, then NMI, HardFault, MemManage, BusFault, UsageFault */
__attribute__((section(".vectors"), used)) static void (*const vectors[])(void) = {
    (void (*)(void))(uintptr_t)_stack_top, reset_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, fault_handler,
};
