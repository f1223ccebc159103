"""Running commands for the file-handling tests: with a deadline and a memory reading, or as an
unprivileged user (root writes anywhere, so permission cases run as nobody when root)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

NOBODY = 65534
# Runs argv[2:] and writes its peak memory (kB) to argv[1]. Measured from this small process: a
# child's peak counts the memory of the process it was forked from, and pytest's is large.
_MEASURE = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


@dataclass
class Result:
    code: int
    out: str
    err: str
    peak_mb: float  # the command's peak resident memory

    def refused(self, *words: str) -> None:
        """Exit 2 with one line `error: ...` holding ``words``, no traceback, nothing on stdout."""
        assert self.code == 2, (self.code, self.out[-500:], self.err[-2000:])
        assert self.err.startswith("error: ") and self.err.count("\n") == 1, self.err[-2000:]
        assert "Traceback" not in self.err and self.out == "", (self.out[-500:], self.err)
        for word in words:
            assert word in self.err, (word, self.err)


def run(cmd: list, timeout: float = 60, cwd: Path | None = None, stdout=None) -> Result:
    """Run ``cmd``; the test fails (and the command is killed) when it takes over ``timeout``
    seconds: a read that never ends must not hang the suite."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as peak,
    ):
        argv = [sys.executable, "-S", "-c", _MEASURE, peak.name, *map(str, cmd)]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout or out,
                                stderr=err, cwd=cwd, start_new_session=True)  # fmt: skip
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            pytest.fail(f"{cmd} did not finish within {timeout} s")
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return Result(proc.returncode, *text, int(peak.read() or 0) / 1024)


def cli(*args) -> list:
    """The command line of symbackprop."""
    return [sys.executable, "-m", "symbackprop.cli", *args]


def public_folder() -> Path:
    """A new folder every user can read and enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="symbackprop-test-"))
    folder.chmod(0o755)
    return folder


def main_as_nobody(argv: list[str], cwd: Path | None = None) -> Result:
    """``symbackprop.cli.main(argv)`` as an unprivileged user: when root, in a forked child that
    has become nobody (every module the command needs must be imported already: /root is
    private); otherwise in this process, as the user running the tests."""
    from symbackprop.cli import main

    if os.geteuid() != 0:
        out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
        try:
            if cwd is not None:
                os.chdir(cwd)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        finally:
            os.chdir(here)
        return Result(code, out.getvalue(), err.getvalue(), 0.0)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            code = 99
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - until os._exit
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                if cwd is not None:
                    os.chdir(cwd)
                code = main(argv)
            except BaseException:  # noqa: BLE001 - reported through stderr
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return Result(os.waitstatus_to_exitcode(status), *text, 0.0)
