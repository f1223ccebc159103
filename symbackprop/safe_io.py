"""Reading and writing user files the way a careful Unix tool does (standard library only).

Included verbatim in every generated NumPy module (as prng.py is), so symbackprop and the programs
it writes treat files alike; the C target's io.c follows the same rules:

- A read takes at most ``limit`` bytes, whatever the file claims to be (/dev/zero, a FIFO, a
  sparse file of a gigabyte), and stops at the first NUL byte of a text file or the first bytes of
  a binary one that are not its format's. The file is opened without blocking, so a FIFO nobody
  writes to reads as empty (and is refused as such) instead of hanging; a pipe that is being
  written (``<(cat data.csv)``) reads normally.
- A write never renames over what is not a regular file: a device or FIFO (/dev/null,
  /dev/stdout) is opened and written in place, as cp and tee do; a symbolic link is followed and
  the file it leads to replaced (the link stays); a regular or new file is replaced atomically (a
  temporary file in its folder, renamed over it: never half a file). A directory, or a symbolic
  link to a missing file, is refused.
"""

import contextlib
import errno
import os
import re
import stat

MAX_FILE_BYTES = 1 << 30  # the generated programs read no larger file (data, weights, checkpoints)
_CHUNK = 1 << 20


def read_bytes(path, limit, text=False, magic=b"", kind=""):
    """The contents of ``path``: ValueError when larger than ``limit`` bytes, when ``text`` and
    it holds a NUL byte, or as soon as it does not start with ``magic`` (then: "not a ``kind``",
    e.g. kind ".npy file"), so a wrong file is refused at its first bytes, not after a gigabyte."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise ValueError(f"larger than {limit} bytes")
        os.set_blocking(fd, True)
        data = bytearray()
        while True:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - len(data)))
            if not chunk:
                if not data.startswith(magic):
                    raise ValueError(f"not a {kind}")
                return bytes(data)
            data += chunk
            if text and b"\0" in chunk:
                raise ValueError("not a text file (contains NUL bytes)")
            if data[: len(magic)] != magic[: len(data)]:
                raise ValueError(f"not a {kind}")
            if len(data) > limit:
                raise ValueError(f"larger than {limit} bytes")
    finally:
        os.close(fd)


def _destination(path):
    """The file ``write_bytes`` replaces atomically: ``path``, or the file a symbolic link at
    ``path`` leads to; None to write ``path`` in place (a device or FIFO: a rename would
    replace it)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):  # a link to a missing file
            raise
        return path
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(info.st_mode):
        return None
    resolved = os.path.realpath(path)
    try:
        return resolved if os.path.samestat(info, os.stat(resolved)) else None
    except OSError:  # a file reached through /proc/self/fd whose name is gone: in place
        return None


def _temporary(target):
    """A new empty file beside ``target``, created with the umask's mode: (descriptor, path)."""
    folder = os.path.dirname(target) or "."
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".symbackprop-{os.urandom(8).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)


def write_bytes(path, data):
    """Write ``data`` to ``path`` (see the module's docstring); OSError when it cannot."""
    target = _destination(path)
    if target is None:
        with open(path, "wb") as f:  # a FIFO: waits for a reader, as tee does
            f.write(data)
        return
    fd, tmp = _temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path):
    """Raise now the OSError that ``write_bytes(path, ...)`` would raise later (checked before
    any work, so a bad output path fails at once, not after training)."""
    target = _destination(path)
    if target is None:
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return
    fd, tmp = _temporary(target)
    os.close(fd)
    os.unlink(tmp)


# ---- text files: lines, words and numbers (the weight-file and CSV grammar) ----

_BLANKS = " \t\r\v\f"
_BLANK_RUN = re.compile("[ \t\r\v\f]+")
_DECIMAL = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.I
)
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _text_lines(path):
    """The lines of a text file (a weight file, checkpoint or CSV), split at "\n" only, without a
    UTF-8 byte-order mark at its start (Windows editors write one); read as read_bytes reads:
    bounded, never blocking, no NUL byte."""
    try:
        data = read_bytes(path, MAX_FILE_BYTES, text=True)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return data.decode("latin-1").removeprefix("\xef\xbb\xbf").split("\n")


def _words(line):
    """The words of a line, split at runs of blanks (spaces, tabs, \r, \v, \f)."""
    return [w for w in _BLANK_RUN.split(line) if w]


def _number(s):
    """The float a decimal number s (blanks around it allowed) stands for, else None."""
    s = s.strip(_BLANKS)
    return float(s) if _DECIMAL.fullmatch(s) else None


def _integer(s):
    """The int a decimal integer s (blanks around it allowed) stands for, else None."""
    s = s.strip(_BLANKS)
    try:
        return int(s) if _INTEGER.fullmatch(s) else None
    except ValueError:  # more digits than int() converts: out of every range here
        return None
