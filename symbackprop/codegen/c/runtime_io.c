/* symbackprop/codegen/c/runtime_io.c: the C target's file reading, copied verbatim into every
 * generated <name>.c from the marker line on: whole files read with a size limit, lines, numbers
 * as the NumPy target reads them, .csv and .npy tables, and where a save writes (a temporary file
 * renamed into place, or in place for a device). It is a real C file so that it is compiled and
 * tested on its own (tests/test_runtime_sources.py builds it with -Wall -Wextra -Werror).
 *
 * Above the marker: stand-ins for what the generated file defines before it (its headers,
 * POSIX_FILES, MAX_FILE_BYTES from <name>.h, and the PRNG's mix64); they are never copied.
 */
#if !defined(_XOPEN_SOURCE) && (defined(__unix__) || defined(__APPLE__))
#define _XOPEN_SOURCE 700 /* for open, fstat, lstat and realpath */
#endif
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#define POSIX_FILES 1
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#ifndef MAX_FILE_BYTES
#define MAX_FILE_BYTES ((size_t)1 << 30)
#endif

/* splitmix64's output function (the generated file's PRNG) */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* ---- symbackprop runtime: reading files (copied from the next line on) ---------------------- */
#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -1)
#define BLANKS " \t\r\v\f"

/* The message in err, after "path: "; -1 */
static int with_path(const char *path, char *err, size_t errlen)
{
    char message[512];
    snprintf(message, sizeof message, "%s", errlen ? err : "");
    return FAIL("%s: %s", path, message);
}

/* The whole file, NUL-terminated (not counted in *len); NULL with a message in err. Opened without
 * blocking (a FIFO nobody writes to reads as empty) and read up to MAX_FILE_BYTES, whatever it
 * claims to be; a text file (npy 0) stops at a NUL byte (the parsers read it as one string), a
 * .npy file at a wrong first byte. A UTF-8 byte-order mark at the start of a text file (Windows
 * editors write one) is dropped. */
static char *read_file(const char *path, int npy, size_t *len, char *err, size_t errlen)
{
    size_t cap = 1 << 16, used = 0, got;
    char *buf = NULL, *grown;
    int bad = 0;
#ifdef POSIX_FILES
    struct stat st;
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    FILE *f = fd < 0 || fstat(fd, &st) != 0 || fcntl(fd, F_SETFL, 0) != 0 ? NULL : fdopen(fd, "rb");
    if (!f && fd >= 0) close(fd);
    if (f && S_ISDIR(st.st_mode)) bad = FAIL("%s", strerror(EISDIR));
    else if (f && S_ISREG(st.st_mode) && (uintmax_t)st.st_size > MAX_FILE_BYTES) bad = FAIL("larger than %zu bytes", MAX_FILE_BYTES);
#else
    FILE *f = fopen(path, "rb");
#endif
    if (!f && !bad) bad = FAIL("%s", strerror(errno));
    if (!bad && !(buf = malloc(cap + 1))) bad = FAIL("out of memory");
    while (!bad && (got = fread(buf + used, 1, cap - used, f)) > 0) {
        if (npy ? memcmp(buf, "\x93NUMPY", used + got < 6 ? used + got : 6) != 0 : memchr(buf + used, '\0', got) != NULL)
            bad = FAIL(npy ? "not a .npy file of version 1 to 3" : "not a text file");
        else if ((used += got) > MAX_FILE_BYTES)
            bad = FAIL("larger than %zu bytes", MAX_FILE_BYTES);
        else if (used == cap) { /* grow, up to one byte over the limit */
            cap = cap > MAX_FILE_BYTES / 2 ? MAX_FILE_BYTES + 1 : 2 * cap;
            if ((grown = realloc(buf, cap + 1)) != NULL) buf = grown;
            else bad = FAIL("out of memory");
        }
    }
    if (!bad && ferror(f)) bad = FAIL("read error");
    if (f) fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    if (!npy && used >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        used -= 3;
        memmove(buf, buf + 3, used);
    }
    buf[used] = '\0';
    *len = used;
    return buf;
}

/* The next line after *pos that is neither blank nor a comment, NUL-terminated in place */
static char *next_line(char **pos)
{
    while (**pos) {
        char *line = *pos, *stop = line + strcspn(line, "\n");
        *pos = stop + (*stop != '\0');
        *stop = '\0';
        if (line[strspn(line, BLANKS)] && line[0] != '#') return line;
    }
    return NULL;
}

/* The number at *s (blanks before it allowed) into out (kind 'f': double, 'i': long long, 'u':
 * unsigned long long), *s moved past it and the blanks after it: 1, or 0 if there is none, it is
 * hex or nan(...) (NumPy's float() refuses them), an integer is too large or a non-blank follows */
static int scan(char **s, char kind, void *out)
{
    char *end;
    errno = 0;
    *s += strspn(*s, BLANKS);
    if (kind == 'f' && strcspn(*s, BLANKS "xX(") < strcspn(*s, BLANKS))
        return 0; /* hex, or nan(...) */
    if (kind == 'f')
        *(double *)out = strtod(*s, &end);
    else if (kind == 'i')
        *(long long *)out = strtoll(*s, &end, 10);
    else
        *(unsigned long long *)out = strtoull(*s, &end, 10);
    if (end == *s || (kind != 'f' && errno) || (*end && !strchr(BLANKS, *end))) return 0;
    *s = end + strspn(end, BLANKS);
    return 1;
}

/* s is one number, blanks around it allowed: 1, else 0 */
static int number(char *s, double *x)
{
    return scan(&s, 'f', x) && !*s;
}

/* How save writes path: 1 in place, as cp does, when it is a device or FIFO such as /dev/null or
 * /dev/stdout (a rename would replace it); 0 through a temporary file renamed over path or, for a
 * symbolic link, over the file it leads to (*target, malloc'd); -1: a directory, a broken link. */
static int destination(const char *path, char **target, char *err, size_t errlen)
{
    *target = NULL;
#ifdef POSIX_FILES
    struct stat st, real;
    if (stat(path, &st) != 0)
        return errno == ENOENT && lstat(path, &st) != 0 ? 0 : FAIL("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return FAIL("%s: %s", path, strerror(EISDIR));
    if (!S_ISREG(st.st_mode)) return 1;
    *target = realpath(path, NULL);
    if (!*target || stat(*target, &real) != 0 || real.st_ino != st.st_ino || real.st_dev != st.st_dev) {
        free(*target); /* a file reached through /proc/self/fd whose name is gone: in place */
        *target = NULL;
        return 1;
    }
#else
    (void)path, (void)err, (void)errlen;
#endif
    return 0;
}

/* A new file in the folder of target, its name in tmp, private to this run: the tag mixes the
 * time, the clock and a stack address (which differs between threads and, with ASLR, processes) */
static FILE *temporary(const char *target, char *tmp, const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(target, '/');
    const uint64_t tag = mix64((uint64_t)time(NULL) ^ (uint64_t)clock() << 24 ^ (uint64_t)(uintptr_t)&slash);
    FILE *f = NULL;
    if (snprintf(tmp, 4096, "%.*s.symbackprop-%016llx.tmp", slash ? (int)(slash - target + 1) : 0, target,
                 (unsigned long long)tag) >= 4096)
        (void)FAIL("%s: path too long", path);
    else if (!(f = fopen(tmp, "w")))
        (void)FAIL("%s: %s", path, strerror(errno));
    return f;
}

/* CSV: an optional header line (its first field is not a number), then rows of numbers */
static int parse_csv(char *buf, double **table, long *dims, char *err, size_t errlen)
{
    size_t lines = 1;
    long n = 0, c = 0, lineno = 0;
    int first = 1;
    double x;
    for (const char *s = buf; (s = strchr(s, '\n')) != NULL; ++s) ++lines;
    *table = NULL;
    for (char *line = buf, *next; *line; line = next) {
        char *stop = line + strcspn(line, "\n"), *field = line, *comma;
        long k = 0;
        next = stop + (*stop != '\0');
        *stop = '\0';
        ++lineno;
        if (!line[strspn(line, BLANKS)]) continue; /* blank line */
        if (first) { /* the first line is a header if its first field is not a number */
            const size_t w = strcspn(line, ",");
            const char keep = line[w];
            line[w] = '\0';
            first = 0;
            if (!number(line, &x)) continue;
            line[w] = keep;
        }
        if (c == 0) { /* the first row fixes the number of columns */
            for (const char *s = line; (s = strchr(s, ',')) != NULL; ++s) ++c;
            if (lines > ((size_t)-1) / sizeof(double) / (size_t)++c) return FAIL("too large");
            if (!(*table = malloc(lines * (size_t)c * sizeof(double)))) return FAIL("out of memory");
        }
        for (;; field = comma + 1, ++k) {
            const int more = *(comma = field + strcspn(field, ",")) == ',';
            *comma = '\0';
            if (!number(field, &x))
                return FAIL("line %ld, column %ld: not a number: '%.40s'", lineno, k + 1, field);
            if (k < c) (*table)[(size_t)n * (size_t)c + (size_t)k] = x;
            if (!more) break;
        }
        if (k + 1 != c) return FAIL("line %ld: expected %ld values like the first row", lineno, c);
        ++n;
    }
    dims[0] = n;
    dims[1] = c;
    return 0;
}

/* The value after 'key': in a .npy header, or NULL */
static char *npy_field(char *header, const char *key)
{
    char *p = strstr(header, key);
    return p ? p + strlen(key) + strspn(p + strlen(key), " ") : NULL;
}

/* .npy: version 1-3 header, '<f8' or '<f4', C order, 2-D; the data must fill the rest exactly */
static int parse_npy(char *buf, size_t len, double **table, long *dims, char *err, size_t errlen)
{
    const unsigned char *u = (const unsigned char *)buf;
    const int version = len > 11 ? u[6] : 0, at = version > 1 ? 12 : 10;
    const uint16_t probe = 1;
    size_t hlen, size, count;
    char header[4096], *descr, *order, *s, *end;
    *table = NULL;
    if (len < 12 || memcmp(buf, "\x93NUMPY", 6) != 0 || version < 1 || version > 3 || u[7] != 0)
        return FAIL("not a .npy file of version 1 to 3");
    hlen = (size_t)u[8] | (size_t)u[9] << 8 | (version > 1 ? (size_t)u[10] << 16 | (size_t)u[11] << 24 : 0);
    if (hlen >= sizeof header || hlen > len - at) return FAIL("bad .npy header");
    memcpy(header, buf + at, hlen);
    header[hlen] = '\0';
    descr = npy_field(header, "'descr':");
    order = npy_field(header, "'fortran_order':");
    s = npy_field(header, "'shape':");
    size = !descr ? 0 : strncmp(descr, "'<f8'", 5) == 0 ? 8 : strncmp(descr, "'<f4'", 5) == 0 ? 4 : 0;
    if (!size) return FAIL("the array must be float64 or float32 (little-endian)");
    if (!order || strncmp(order, "False", 5) != 0) return FAIL("the array must be in C order");
    if (*(const unsigned char *)&probe != 1) return FAIL("big-endian machines are not supported");
    for (int d = 0; d < 2; ++d) { /* "(rows, cols)", blanks and a trailing comma allowed */
        if (s && *s == (d ? ',' : '(')) ++s;
        errno = 0;
        dims[d] = s ? strtol(s, &end, 10) : -1;
        if (!s || end == s || errno || dims[d] < 0) return FAIL("the array must be 2-D");
        s = end + strspn(end, " ");
    }
    s += *s == ',';
    if (*(s + strspn(s, " ")) != ')') return FAIL("the array must be 2-D");
    if (dims[1] > 0 && (size_t)dims[0] > ((size_t)-1) / size / (size_t)dims[1]) return FAIL("too large");
    count = (size_t)dims[0] * (size_t)dims[1];
    if (len - at - hlen != count * size)
        return FAIL("%zu data bytes for shape (%ld, %ld), expected %zu", len - at - hlen, dims[0], dims[1], count * size);
    if (!(*table = malloc((count ? count : 1) * sizeof(double)))) return FAIL("out of memory");
    for (size_t i = 0; i < count; ++i) {
        float x;
        if (size == 8) {
            memcpy(*table + i, buf + at + hlen + 8 * i, 8);
        } else {
            memcpy(&x, buf + at + hlen + 4 * i, 4);
            (*table)[i] = x;
        }
    }
    return 0;
}
