/* Semihosting output for a program under QEMU (-semihosting): strings to the host's stdout, exact
 * numbers as hexadecimal bits (no printf: nothing from stdio is linked), and the exit status. */
#ifndef SYMBACKPROP_SEMIHOST_H
#define SYMBACKPROP_SEMIHOST_H

#include <stdint.h>

/* One semihosting call: operation op with argument arg (ARM's bkpt 0xAB convention) */
static inline uint32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* SYS_WRITE0: a NUL-terminated string */
static inline void put_string(const char *s)
{
    semihost(0x04, s);
}

/* The n low hexadecimal digits of v, then a space */
static inline void put_hex(uint64_t v, int digits)
{
    char text[18];
    for (int i = digits - 1; i >= 0; --i, v >>= 4) text[i] = "0123456789abcdef"[v & 15u];
    text[digits] = ' ';
    text[digits + 1] = '\0';
    put_string(text);
}

/* SYS_EXIT: ADP_Stopped_ApplicationExit (status 0 to QEMU) when ok, else ADP_Stopped_InternalError */
static inline void exit_board(int ok)
{
    semihost(0x18, (const void *)(uintptr_t)(ok ? 0x20026u : 0x20024u));
    for (;;) {
    }
}

#endif
