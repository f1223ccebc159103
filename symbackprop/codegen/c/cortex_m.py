"""The C target on a Cortex-M4F: cross-compile with ``arm-none-eabi-gcc`` and run on QEMU's
``mps2-an386`` board (semihosting for output, no C library start files, no heap).

The board support (vector table and reset, linker script, semihosting output) is real C in
``symbackprop/data/cortex_m/``; a program for the board is that plus the generated library and a
``main``.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

from ...spec.errors import SpecError

CC = "arm-none-eabi-gcc"
QEMU = "qemu-system-arm"
BOARD = "mps2-an386"
# The M4's single-precision FPU with the hard-float ABI; -Os as a device build.
ARCH = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
FLAGS = (*ARCH, "-Os", "-std=c99", "-ffp-contract=off", "-fno-math-errno",
         "-ffunction-sections", "-fdata-sections")  # fmt: skip
# newlib-nano's libc and libm for memcpy, expf, ...; the nosys stubs stand for the system calls
# of library functions the program never reaches (--gc-sections drops them).
LINK = ("-nostartfiles", "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs")


def board() -> Path:
    """The folder of the board support files (startup.c, semihost.h, mps2_an386.ld)."""
    return Path(str(resources.files("symbackprop") / "data" / "cortex_m"))


def available() -> bool:
    """Whether the cross compiler and the emulator are installed."""
    return shutil.which(CC) is not None and shutil.which(QEMU) is not None


def _run(cmd: list[str], what: str, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().split("\n")[:5]
        raise SpecError("CC", f"{what} failed ({done.returncode}): {' '.join(lines)}")
    return done


def compile_object(source: Path, output: Path, flags: tuple[str, ...] = ()) -> Path:
    """One source file to an object for the M4 (its code size is ``text_bytes``)."""
    if shutil.which(CC) is None:
        raise SpecError("--arch", f"{CC} is not installed (Debian: gcc-arm-none-eabi)")
    _run([CC, *FLAGS, *flags, "-c", str(source), "-o", str(output)], CC, 300)
    return output


def build_firmware(sources: list[Path], output: Path, flags: tuple[str, ...] = ()) -> Path:
    """``sources`` (one has main) with the board's startup into an ELF image for the board."""
    here = board()
    cmd = [CC, *FLAGS, *flags, f"-I{here}", str(here / "startup.c"), *map(str, sources),
           "-T", str(here / "mps2_an386.ld"), *LINK, "-lm", "-o", str(output)]  # fmt: skip
    _run(cmd, CC, 300)
    return output


def run(image: Path, timeout: float = 60, icount: bool = False) -> str:
    """What the program prints on the emulated board (exit status 0 required): QEMU writes
    semihosting output to its stderr. ``icount``: one instruction a virtual nanosecond."""
    cmd = [QEMU, "-M", BOARD, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(image)]  # fmt: skip
    if icount:
        cmd[1:1] = ["-icount", "shift=0"]
    return _run(cmd, QEMU, timeout).stderr


def text_bytes(path: Path) -> int:
    """Code and constants (text + data) of an object or image, by ``arm-none-eabi-size``."""
    out = _run(["arm-none-eabi-size", str(path)], "arm-none-eabi-size", 60).stdout
    text, data = out.strip().split("\n")[-1].split()[:2]
    return int(text) + int(data)


__all__ = ["ARCH", "FLAGS", "available", "board", "build_firmware", "compile_object", "run",
           "text_bytes"]  # fmt: skip
