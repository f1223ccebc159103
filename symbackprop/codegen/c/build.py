"""Turn the generated C target into a shared library or program: find the compiler (``$CC``,
``$CFLAGS``) and compile into a build cache (``$SYMBACKPROP_CACHE``, keyed by sources and flags).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...spec.errors import SpecError

# -ffp-contract=off: no FMA, so the PRNG rounds as NumPy's. -fno-math-errno and -fno-trapping-math
# change no value (no errno from sqrt, no FP traps) but let gcc vectorize sqrt and conditionals.
BASE_FLAGS = ("-std=c99", "-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math")


class CompileError(SpecError):
    """The C compiler failed (a bad ``$CC`` or ``$CFLAGS``, a broken set of files): one line with
    its exit status, its first error lines and the command."""

    def __init__(self, reason: str):
        super().__init__("CC", reason)


def compiler() -> list[str]:
    """The C compiler command: ``$CC`` (default ``cc``); a SpecError when there is none."""
    cc = shlex.split(os.environ.get("CC") or "cc")
    if not cc or shutil.which(cc[0]) is None:
        name = cc[0] if cc else "''"
        raise SpecError("CC", f"no C compiler found ({name}): install gcc or set CC")
    return cc


def cache_dir() -> Path:
    """Where compiled libraries are kept."""
    root = os.environ.get("SYMBACKPROP_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "symbackprop"


def network_name(directory: str | Path) -> str:
    """The network name of a generated C folder: the one ``<name>_main.c`` beside its
    ``<name>.c`` (a net named ``x_main`` has both ``x_main.c`` and ``x_main_main.c``)."""
    mains = [
        m
        for m in sorted(Path(directory).glob("*_main.c"))
        if m.with_name(m.name[:-7] + ".c").is_file()
    ]
    if len(mains) != 1:
        raise SpecError(
            "", "expected exactly one <name>_main.c (generate --target c)", str(directory)
        )
    return mains[0].name[: -len("_main.c")]


def compile_c(sources: list[Path], output: Path, flags: list[str], libs: list[str]) -> Path:
    """Compile ``sources`` into ``output`` (cached by content, compiler and flags)."""
    cc = compiler()
    digest = hashlib.sha256("\0".join([*cc, *flags, *libs]).encode())
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
        header = src.with_suffix(".h")
        if header.exists():
            digest.update(header.read_bytes())
    target = output.with_name(f"{output.stem}-{digest.hexdigest()[:16]}{output.suffix}")
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
    except OSError as exc:
        reason = f"cannot write the build cache: {exc.strerror or exc}"
        raise SpecError("SYMBACKPROP_CACHE", reason, str(target.parent)) from None
    cmd = [*cc, *flags, "-o", tmp, *map(str, sources), *libs]
    try:
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CompileError(f"cannot run the C compiler {cc[0]}: {reason}") from None
        if run.returncode != 0:
            out = run.stderr.splitlines() + run.stdout.splitlines()
            lines = [ln.strip() for ln in out if "error" in ln] or [ln.strip() for ln in out]
            said = ": " + "; ".join(lines[:5]) if lines else ""
            raise CompileError(
                f"the C compiler failed (exit status {run.returncode}){said} "
                f"(command: {shlex.join(cmd)})"
            )
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _flags(name: str, cflags: list[str] | None, blas: bool) -> tuple[list[str], list[str]]:
    flags = [*BASE_FLAGS, *shlex.split(os.environ.get("CFLAGS", "")), *(cflags or [])]
    libs = ["-lm"]
    if blas:
        flags.append(f"-D{name.upper()}_BLAS")
        libs.insert(0, os.environ.get("BLAS_LIBS", "-lopenblas"))
    return flags, libs


def build_library(
    directory: str | Path, cflags: list[str] | None = None, blas: bool = False
) -> Path:
    """Compile ``<name>.c`` of a generated folder into a shared library; its path."""
    directory = Path(directory)
    name = network_name(directory)
    flags, libs = _flags(name, cflags, blas)
    return compile_c(
        [directory / f"{name}.c"], cache_dir() / f"lib{name}.so", [*flags, "-fPIC", "-shared"], libs
    )


def build_program(
    directory: str | Path, cflags: list[str] | None = None, blas: bool = False
) -> Path:
    """Compile the command-line program of a generated folder; its path."""
    directory = Path(directory)
    name = network_name(directory)
    flags, libs = _flags(name, cflags, blas)
    sources = [directory / f"{name}_main.c", directory / f"{name}.c"]
    return compile_c(sources, cache_dir() / name, flags, libs)


__all__ = [
    "BASE_FLAGS",
    "CompileError",
    "build_library",
    "build_program",
    "cache_dir",
    "compile_c",
    "compiler",
    "network_name",
]
