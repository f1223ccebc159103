"""Input files that never end or are mostly holes (a FIFO nobody writes to, /dev/zero, a sparse file
of a gigabyte): a spec, an `--at` sample file, training data, weights. Each is refused within
seconds, having read no more than it must: the peak memory of the command stays far below the
size of the file."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from processes import cli, run

from symbackprop.safe_io import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parents[1]
MAZUR = ROOT / "examples/mazur.yaml"
SAMPLE = ROOT / "examples/mazur_sample.yaml"
IRIS_SPEC = ROOT / "examples/iris_softmax.yaml"
IRIS = ROOT / "examples/data/iris.csv"
GIB = 1 << 30


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no room: all holes (NUL bytes when read)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.fixture
def endless(tmp_path) -> dict[str, Path]:
    """Inputs that a naive reader hangs on or reads for gigabytes."""
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    return {
        "fifo": fifo,  # nobody ever writes to it
        "/dev/zero": Path("/dev/zero"),
        "sparse": sparse(tmp_path / "sparse.csv", GIB),
        "huge": sparse(tmp_path / "huge.csv", MAX_FILE_BYTES + 1),
    }


def assert_small(result, limit_mb: float) -> None:
    assert result.peak_mb < limit_mb, f"peak memory {result.peak_mb:.0f} MB: the file was read"


# ---- symbackprop: spec, --at and --data ------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "sparse"])
def test_spec_and_sample_files_are_read_with_a_limit(kind, endless):
    path = endless[kind]
    for args in (["derive", path], ["derive", MAZUR, "--at", path]):
        result = run(cli(*args), timeout=60)
        result.refused(str(path))
        assert_small(result, 400)


@pytest.mark.parametrize("target", ["numpy", "c"])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "sparse", "huge"])
def test_cli_train_data_is_read_with_a_limit(kind, target, endless, iris_programs):
    if target not in iris_programs:
        pytest.skip("no cc (CI has it)")
    path = endless[kind]
    args = ["train", IRIS_SPEC, "--data", path, "--target", target, "--out", path.parent / "w"]
    result = run(cli(*args), timeout=120)
    result.refused(str(path))
    assert_small(result, 500)
    assert not (path.parent / "w").exists()


# ---- the generated programs: data, --init, --resume, predict ---------------------------------


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_programs_read_files_with_a_limit(target, iris_programs, endless, tmp_path):
    if target not in iris_programs:
        pytest.skip("no cc (CI has it)")
    command, weights = iris_programs[target], tmp_path / "w"
    inputs = {**endless, "sparse.npy": sparse(tmp_path / "sparse.npy", GIB)}
    fifo_npy = tmp_path / "fifo.npy"
    os.mkfifo(fifo_npy)
    inputs["fifo.npy"] = fifo_npy
    limit = 300 if target == "numpy" else 50
    for kind, path in inputs.items():
        result = run([*command, "train", path, "--epochs", "1", "--out", weights])
        result.refused(str(path))
        assert_small(result, limit)
        assert not weights.exists(), kind
    assert run([*command, "train", IRIS, "--epochs", "1", "--quiet", "--out", weights]).code == 0
    for kind in ("fifo", "/dev/zero", "sparse", "huge"):
        path = endless[kind]
        for args in (
            ["train", IRIS, "--init", path, "--out", tmp_path / "w2"],
            ["train", IRIS, "--resume", path, "--out", tmp_path / "w2"],
            ["predict", path, IRIS],
            ["predict", weights, path],
        ):
            result = run([*command, *args])
            result.refused(str(path))
            assert_small(result, limit)


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_a_pipe_that_is_written_is_read(target, iris_programs, tmp_path):
    """Not blocking on a FIFO nobody writes to does not refuse one that is written: process
    substitution hands the program a pipe whose writer is there."""
    if target not in iris_programs:
        pytest.skip("no cc (CI has it)")
    command = shlex.join(map(str, iris_programs[target]))
    weights = tmp_path / "w"
    script = f"{command} train <(cat {shlex.quote(str(IRIS))}) --epochs 2 --quiet --out {weights}"
    run_ = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert run_.returncode == 0 and run_.stderr == "", run_.stderr
    assert weights.read_text().startswith("# symbackprop weights iris_softmax")
    spec, at = (f"<(cat {shlex.quote(str(p))})" for p in (MAZUR, SAMPLE))
    script = f"{shlex.join(map(str, cli('derive')))} {spec} --at {at} --format json"
    run_ = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert run_.returncode == 0 and '"loss": 0.29837' in run_.stdout, run_.stderr
