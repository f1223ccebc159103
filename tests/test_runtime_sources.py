"""The static runtime of the generated programs lives in real source files (issue 12): the NumPy
module's training loop, files and command line in symbackprop/codegen/numpy/runtime.py, the C
program's file reading in symbackprop/codegen/c/runtime_io.c. Each is linted or compiled on its
own, and every generated program carries it verbatim."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c.backend import RUNTIME_IO, runtime_io_source
from symbackprop.codegen.c.build import compiler
from symbackprop.codegen.numpy import runtime
from symbackprop.codegen.numpy.backend import runtime_source

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["mazur", "iris_softmax", "residual_mlp", "adam_gelu"]
RUNTIME_PY = Path(runtime.__file__)


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_numpy_runtime_is_ruff_clean(args):
    """ruff check and ruff format --check pass on runtime.py with the project's settings."""
    done = subprocess.run([sys.executable, "-m", "ruff", *args, str(RUNTIME_PY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _stand_ins() -> list[str]:
    """The names runtime.py defines above its marker (the generated module's own)."""
    tree = ast.parse(RUNTIME_PY.read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "train":
            break
        if isinstance(node, ast.FunctionDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name) and t.id != "__all__"]
        elif isinstance(node, ast.ImportFrom):
            names += [a.asname or a.name for a in node.names]
    return names


@pytest.mark.parametrize("name", SPECS)
def test_numpy_module_carries_the_runtime_verbatim(name, tmp_path):
    """The generated module holds runtime.py from `def train(` to its end, character for
    character, and defines every name the runtime's stand-ins stand for."""
    source = render(symbackprop.load_spec(ROOT / "examples" / f"{name}.yaml"), "numpy")
    text = source[f"{name}.py"]
    body = runtime_source()
    assert body.startswith("def train(") and "def main(argv=None):" in body
    assert "NotImplementedError" not in body  # no stand-in copied
    assert text.endswith(body)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    module = {}
    exec(compile(text, str(path), "exec"), module)  # the generated module, not user text
    missing = [n for n in _stand_ins() if n not in module]
    assert not missing, missing
    assert {"OUTPUT", "LOGITS", "MULTI_AXIS", "STATE_BUFFERS", "lr_schedule"} <= set(_stand_ins())


@pytest.mark.parametrize("name", SPECS)
def test_c_program_carries_the_file_reading_verbatim(name):
    """The generated <name>.c holds runtime_io.c after its marker, character for character."""
    files = render(symbackprop.load_spec(ROOT / "examples" / f"{name}.yaml"), "c")
    body = runtime_io_source()
    assert body.startswith("#define FAIL(") and "static int parse_npy(" in body
    assert "stand-in" not in body and "static uint64_t mix64" not in body
    assert body in files[f"{name}.c"]


DRIVER = r"""
#include "runtime_io.c"

/* Read each table named on the command line as the generated program does; print its shape and
 * numbers, or the one-line error. Then the line and number scanners on a weight-file text. */
int main(int argc, char **argv)
{
    volatile size_t size = 512; /* a size gcc does not see (it warns of truncation otherwise) */
    const size_t errlen = size;
    char *err = calloc(errlen, 1);
    for (int a = 1; a < argc; ++a) {
        const size_t plen = strlen(argv[a]);
        const int npy = plen >= 4 && strcmp(argv[a] + plen - 4, ".npy") == 0;
        size_t len;
        long dims[2] = {0, 0};
        double *table = NULL;
        char *buf = read_file(argv[a], npy, &len, err, errlen);
        int status = buf ? (npy ? parse_npy(buf, len, &table, dims, err, errlen)
                                : parse_csv(buf, &table, dims, err, errlen)) : -1;
        free(buf);
        if (status != 0) {
            with_path(argv[a], err, errlen);
            printf("error %s\n", err);
        } else {
            printf("%ld %ld", dims[0], dims[1]);
            for (long i = 0; i < dims[0] * dims[1]; ++i) printf(" %.17g", table[i]);
            printf("\n");
        }
        free(table);
    }
    {
        char text[] = "# comment\n \t\nW1 2 3\n 1.5 -2e-3 7 \n", *pos = text, *line, *target = NULL;
        long long d[2] = {0, 0};
        double x[3] = {0, 0, 0};
        char tmp[4096];
        FILE *f;
        line = next_line(&pos);
        line += 2;
        if (!(scan(&line, 'i', &d[0]) && scan(&line, 'i', &d[1]) && !*line)) return 3;
        line = next_line(&pos);
        for (int k = 0; k < 3; ++k)
            if (!scan(&line, 'f', &x[k])) return 4;
        if (number("0x1p3", &x[0]) || next_line(&pos)) return 5;
        printf("dims %lld %lld values %.17g %.17g\n", d[0], d[1], x[1], x[2]);
        if (argc > 1 && destination(argv[1], &target, err, errlen) == 0) {
            f = temporary(target ? target : argv[1], tmp, argv[1], err, errlen);
            if (f) fclose(f), remove(tmp);
            printf("temporary %d\n", f != NULL);
        }
        free(target);
    }
    free(err);
    return 0;
}
"""


def test_c_file_reading_compiles_alone_and_reads_tables(tmp_path):
    """runtime_io.c builds on its own with -Wall -Wextra -Werror (and the sanitizers), and reads
    a .csv and a .npy table into the numbers NumPy reads; a bad row is one error line."""
    (tmp_path / "runtime_io.c").write_text(RUNTIME_IO.read_text())
    (tmp_path / "driver.c").write_text(DRIVER)
    exe = tmp_path / "driver"
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1",
             "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]  # fmt: skip
    done = subprocess.run([*compiler(), *flags, "-o", str(exe), str(tmp_path / "driver.c"), "-lm"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = np.array([[0.1, -2.5, 3.0], [1e-300, 7.25, -0.0]])
    np.save(tmp_path / "t.npy", data)
    np.save(tmp_path / "f.npy", data.astype(np.float32))
    (tmp_path / "t.csv").write_text("a,b,c\n0.1, -2.5,3\n\n1e-300,7.25 ,-0.0\n")
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    paths = [str(tmp_path / f) for f in ("t.npy", "f.npy", "t.csv", "bad.csv")]
    run = subprocess.run([str(exe), *paths], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    for line, want in zip(lines[:3], [data, data.astype(np.float32), data], strict=True):
        shape, values = line.split()[:2], [float(v) for v in line.split()[2:]]
        assert [int(s) for s in shape] == [2, 3]
        assert np.array_equal(np.array(values), want.astype(np.float64).ravel())
    assert lines[3] == f"error {paths[3]}: line 2, column 2: not a number: 'x'"
    assert lines[4] == "dims 2 3 values -0.002 7"
    assert lines[5] == "temporary 1"
