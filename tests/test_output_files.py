"""Output files (`derive -o`, `train --out`, the generated programs' `--out`): never a rename over a
device, a FIFO or a symbolic link; an output that cannot be written is one line and exit 2, found
before any work; a compiler that fails is one line and exit 2 too."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import threading
from pathlib import Path

import pytest
from processes import cli, main_as_nobody, public_folder, run

from symbackprop.cli import main

ROOT = Path(__file__).resolve().parents[1]
MAZUR = ROOT / "examples/mazur.yaml"
IRIS_SPEC = ROOT / "examples/iris_softmax.yaml"
IRIS = ROOT / "examples/data/iris.csv"
HAS_CC = shutil.which(os.environ.get("CC", "cc")) is not None


def device(folder: Path) -> Path:
    """A character device to write to: a private copy of /dev/null when we may make one."""
    node = folder / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return node
    except OSError:  # not root, or no CAP_MKNOD: the real one (a normal user cannot replace it)
        return Path("/dev/null")


def read_fifo_while(fifo: Path, command) -> tuple[bytes, object]:
    """Run ``command()`` while a thread reads the FIFO; (bytes read, command's result)."""
    box: list[bytes] = []

    def reader():
        with open(fifo, "rb") as f:
            box.append(f.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    result = command()
    thread.join(timeout=30)
    if thread.is_alive():  # the command never opened it: let the reader go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=30)
    return (box[0] if box else b""), result


# ---- item 1: derive -o ------------------------------------------------------------------------


def test_derive_writes_through_a_symlink_and_keeps_it(tmp_path, capsys):
    real, link = tmp_path / "real.txt", tmp_path / "link.txt"
    real.write_text("old\n")
    link.symlink_to(real)
    assert main(["derive", str(MAZUR), "-o", str(link)]) == 0
    assert link.is_symlink() and "dE/dw2_11" in real.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real.txt"]


def test_derive_writes_into_a_device_in_place(tmp_path, capsys):
    node = device(tmp_path)
    assert main(["derive", str(MAZUR), "-o", str(node)]) == 0
    assert stat.S_ISCHR(node.stat().st_mode)
    assert os.listdir(tmp_path) == (["null"] if node.parent == tmp_path else [])


def test_derive_writes_into_a_fifo_in_place(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got, code = read_fifo_while(fifo, lambda: main(["derive", str(MAZUR), "-o", str(fifo)]))
    assert code == 0 and b"dE/dw2_11" in got
    assert fifo.is_fifo() and os.listdir(tmp_path) == ["fifo"]


def test_derive_to_dev_stdout_prints(tmp_path):
    """/dev/stdout as a pipe, as an unlinked file, and as a file with a name (then replaced)."""
    result = run(cli("derive", MAZUR, "-o", "/dev/stdout"), timeout=120)  # an unlinked file
    assert result.code == 0 and "dE/dw2_11" in result.out, result.err
    script = f"{sys.executable} -m symbackprop.cli derive {MAZUR} -o /dev/stdout | cat"
    piped = run(["sh", "-c", script], timeout=120)
    assert piped.code == 0 and "dE/dw2_11" in piped.out, piped.err
    with open(tmp_path / "out.txt", "w") as named:
        assert run(cli("derive", MAZUR, "-o", "/dev/stdout"), 120, stdout=named).code == 0
    assert "dE/dw2_11" in (tmp_path / "out.txt").read_text()
    assert os.path.islink("/dev/stdout") or not os.path.isfile("/dev/stdout")


# ---- item 1: train --out and the generated programs' --out -----------------------------------


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_cli_train_writes_weights_through_a_symlink(target, tmp_path, capsys):
    if target == "c" and not HAS_CC and not os.environ.get("CI"):
        pytest.skip("no cc (CI has it)")
    real, link = tmp_path / "real.weights", tmp_path / "link.weights"
    real.write_text("old\n")
    link.symlink_to(real)
    argv = ["train", str(IRIS_SPEC), "--data", str(IRIS), "--target", target, "--epochs", "2"]
    assert main([*argv, "--quiet", "--out", str(link)]) == 0
    assert link.is_symlink() and real.read_text().startswith("# symbackprop weights iris_softmax")


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_programs_write_weights_without_replacing_links_or_devices(target, iris_programs, tmp_path):
    if target not in iris_programs:
        pytest.skip("no cc (CI has it)")
    command = [*iris_programs[target], "train", IRIS, "--epochs", "1", "--quiet"]
    for name in ("real", "real_ck"):
        (tmp_path / name).write_text("old\n")
        (tmp_path / name.replace("real", "link")).symlink_to(tmp_path / name)
    link, ck = tmp_path / "link", tmp_path / "link_ck"
    assert run([*command, "--out", link, "--checkpoint", ck]).code == 0
    assert link.is_symlink() and (tmp_path / "real").read_text().startswith("# symbackprop weig")
    assert ck.is_symlink() and (tmp_path / "real_ck").read_text().startswith("# symbackprop chec")
    node = device(tmp_path)
    assert run([*command, "--out", node]).code == 0
    assert stat.S_ISCHR(node.stat().st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got, result = read_fifo_while(fifo, lambda: run([*command, "--out", fifo]))
    assert result.code == 0 and got.startswith(b"# symbackprop weights iris_softmax"), result.err
    assert fifo.is_fifo()
    result = run([*command, "--out", "/dev/stdout"])
    assert result.code == 0 and result.out.startswith("# symbackprop weights"), result.err
    assert os.path.islink("/dev/stdout") or not os.path.isfile("/dev/stdout")
    assert sorted(os.listdir(tmp_path)) == sorted(["real", "link", "real_ck", "link_ck", "fifo", *(
        ["null"] if node.parent == tmp_path else [])])  # fmt: skip


# ---- item 6: outputs that cannot be written ---------------------------------------------------

BAD_OUTPUTS = {
    "parent is a file": "file/sub",
    "name too long": "x" * 300,
    "a directory": "dir",
    "no such folder": "nodir/out",
    "a link to nowhere": "dangling",
}


def bad_output(tmp_path: Path, case: str) -> Path:
    (tmp_path / "file").write_text("mine\n")
    (tmp_path / "dir").mkdir(exist_ok=True)
    if not os.path.lexists(tmp_path / "dangling"):
        (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    return tmp_path / BAD_OUTPUTS[case]


@pytest.mark.parametrize("case", BAD_OUTPUTS)
def test_derive_and_generate_refuse_unwritable_outputs(case, tmp_path, capsys):
    out = bad_output(tmp_path, case)
    for argv in (["derive", str(MAZUR), "-o", str(out)], ["generate", str(MAZUR), "-o", str(out)]):
        if argv[0] == "generate" and case in ("a directory", "no such folder"):
            continue  # generate writes into a folder, made if needed
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert (tmp_path / "file").read_text() == "mine\n" and not list((tmp_path / "dir").iterdir())


@pytest.mark.parametrize("case", BAD_OUTPUTS)
def test_train_refuses_an_unwritable_output_before_training(case, iris_programs, tmp_path, capsys):
    out = bad_output(tmp_path, case)
    argv = ["train", str(IRIS_SPEC), "--data", str(IRIS), "--epochs", "1"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith("error: ") and err.err.count("\n") == 1, err
    assert main([*argv, "--out", str(tmp_path / "w"), "--plot", str(out)]) == 2
    assert capsys.readouterr().out == "" and not (tmp_path / "w").exists()
    for command in iris_programs.values():  # the generated programs: before reading the data too
        for flag in ("--out", "--checkpoint"):
            run([*command, "train", IRIS, "--epochs", "1", flag, out]).refused(str(out))


@pytest.fixture
def read_only() -> Path:
    """A public folder holding the spec and the data, with a read-only folder 'ro' in it."""
    folder = public_folder()
    shutil.copy(MAZUR, folder / "mazur.yaml")
    shutil.copy(IRIS_SPEC, folder / "iris.yaml")
    shutil.copy(IRIS, folder / "iris.csv")
    (folder / "ro").mkdir()
    (folder / "ro").chmod(0o555)
    yield folder
    (folder / "ro").chmod(0o755)
    shutil.rmtree(folder)


def test_read_only_folders_are_one_line_errors(read_only, capsys):
    spec, iris, ro = read_only / "mazur.yaml", read_only / "iris.yaml", read_only / "ro"
    assert main(["derive", str(spec), "-o", str(read_only / "warm.txt")]) == 0  # imports done
    capsys.readouterr()
    cases = [
        (["derive", str(spec), "-o", str(ro / "out.txt")], None),
        (["derive", str(spec), "-o", "out.txt"], ro),  # a read-only working directory
        (["generate", str(spec), "-o", str(ro / "gen")], None),
        (["generate", str(spec), "--target", "c"], ro),  # generated/mazur/ in the working dir
        (["train", str(iris), "--data", str(read_only / "iris.csv"), "--out", "w"], ro),
    ]
    for argv, cwd in cases:
        result = main_as_nobody(argv, cwd)
        result.refused("cannot write")
    assert os.listdir(ro) == []


def test_dev_null_as_a_normal_user(read_only, capsys):
    spec = read_only / "mazur.yaml"
    assert main(["derive", str(spec), "-o", str(read_only / "warm.txt")]) == 0
    capsys.readouterr()
    result = main_as_nobody(["derive", str(spec), "-o", "/dev/null"])
    assert result.code == 0 and result.err == "", result.err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# ---- item 7: the compiler fails --------------------------------------------------------------


@pytest.mark.skipif(not HAS_CC and not os.environ.get("CI"), reason="no cc (CI has it)")
def test_compile_failures_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CFLAGS", "-fbogus")
    assert main(["check", str(ROOT / "examples/xor.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CC: the C compiler failed") and err.count("\n") == 1, err
    assert "-fbogus" in err
    monkeypatch.delenv("CFLAGS")
    monkeypatch.setenv("CC", "false")
    argv = ["train", str(IRIS_SPEC), "--data", str(IRIS), "--target", "c", "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CC: the C compiler failed (exit status 1)"), err
    assert err.count("\n") == 1 and not (tmp_path / "w").exists()
    result = run(cli("check", ROOT / "examples/xor.yaml"), timeout=300)
    result.refused("the C compiler failed")
