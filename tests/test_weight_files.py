"""The NumPy module and the C program read the same weight files, checkpoints and .npy data alike.

Each case mutates a valid file and runs both targets of iris_softmax on it: both must refuse it
(exit status 2, one stderr line `error: ...` naming the file, nothing on stdout) or both must
accept it with the same result (predictions, or the weights a resumed run saves, within a
relative 1e-12). The result they agree on is then checked against what the file says.

The .npy files that NumPy reads and the C program deliberately refuses (it takes only
little-endian float64/float32 tables in C order, filling the file exactly) are tested as such in
test_npy_read_by_numpy_only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from symbackprop.codegen.c.build import build_program
from symbackprop.codegen.numpy.loader import load_numpy

ROOT = Path(__file__).resolve().parents[1]
NAME = "iris_softmax"  # 4 inputs, 3 outputs, cross-entropy, adam
FOLDER = ROOT / "generated" / NAME
HAS_CC = shutil.which(os.environ.get("CC", "cc")) is not None
NUMPY = [sys.executable, str(FOLDER / f"{NAME}.py")]
SEED, BATCH = 11, 5


M = load_numpy(FOLDER / f"{NAME}.py")


@pytest.fixture(scope="module")
def c_program() -> Path:
    """The C program, compiled once for this module (into the session's build cache)."""
    if not HAS_CC:
        pytest.skip("no cc")
    return build_program(FOLDER)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Valid files written by the NumPy module, and the results they should give."""
    folder = tmp_path_factory.mktemp("weight_files")
    rng = np.random.default_rng(5)
    # Inputs in steps of 1/8: exact in float16, float32 and float64 alike
    X = rng.integers(-16, 17, size=(6, M.INPUTS)) / 8.0
    np.savetxt(folder / "data.csv", X, delimiter=",", fmt="%.17g")
    params = M.init_params(3)
    M.save(params, str(folder / "good.weights"))

    Xt = rng.normal(size=(12, M.INPUTS))
    labels = rng.integers(0, M.OUTPUTS, size=12)
    np.savetxt(folder / "train.csv", np.column_stack([Xt, labels]), delimiter=",", fmt="%.17g")
    T = np.eye(M.OUTPUTS)[labels]
    ck_params = M.init_params(SEED)
    state = M.init_state(ck_params)
    M.train(ck_params, Xt, T, 1, BATCH, True, SEED, state)
    M.save_checkpoint(ck_params, state, 1, SEED, str(folder / "good.ckpt"))
    resumed = {k: v.copy() for k, v in ck_params.items()}
    M.train(resumed, Xt, T, 1, BATCH, True, SEED, state, first_epoch=1)
    return {
        "folder": folder,
        "X": X,
        "data": folder / "data.csv",
        "train": folder / "train.csv",
        "weights": (folder / "good.weights").read_bytes(),
        "checkpoint": (folder / "good.ckpt").read_bytes(),
        "params": params,
        "predictions": M.forward(params, X),
        "checkpoint_weights": flat(ck_params),
        "resumed_weights": flat(resumed),
    }


def flat(params: dict) -> np.ndarray:
    return np.concatenate([np.ravel(params[k]) for k in M.PARAM_SHAPES])


def command(target: str, c_program: Path) -> list[str]:
    return NUMPY if target == "numpy" else [str(c_program)]


def run(cmd: list, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*map(str, cmd), *map(str, args)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )


def refused(out: subprocess.CompletedProcess, path: Path) -> bool:
    """True for a proper refusal of path, False for success; anything else fails the test."""
    if out.returncode == 2:
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
        assert str(path) in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and out.stdout == "", (out.stdout, out.stderr)
        return True
    assert out.returncode == 0, (out.returncode, out.stderr)
    if out.stderr:
        raise StderrNoise(out.stderr)
    return False


def predictions(out: subprocess.CompletedProcess) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in out.stdout.splitlines()])


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)


class StderrNoise(AssertionError):
    """A run that succeeded wrote to stderr (the other target is silent)."""


class Disagreement(AssertionError):
    """The targets differ on a file: one refuses it, or they give different numbers."""


def assert_agree(results: dict[str, np.ndarray | None]):
    """Both refused (None) or both accepted with the same numbers."""
    a, b = results["numpy"], results["c"]
    if (a is None) != (b is None) or (a is not None and not close(a, b)):
        raise Disagreement(
            {
                t: "refused" if r is None else f"accepted: {r.ravel()[:4]}"
                for t, r in results.items()
            }
        )


def assert_expected(result: np.ndarray | None, expected, baseline: np.ndarray):
    """expected: "refuse", "same" (as baseline) or "changed" (accepted, other numbers)."""
    if expected == "refuse":
        assert result is None
    else:
        assert result is not None
        assert close(result, baseline) == (expected == "same"), (result.ravel()[:4], baseline)


def assert_predictions_agree(c_program, weights, data, bad: Path, expected, baseline):
    """`predict WEIGHTS DATA` with both targets: both refuse (naming the file bad) or both print
    the same predictions, NaN as "nan" (C's printf may say -nan); then the expected result."""
    results = {}
    for target in ("numpy", "c"):
        out = run(command(target, c_program), "predict", weights, data)
        results[target] = None if refused(out, bad) else predictions(out)
        assert "-nan" not in out.stdout
    assert_agree(results)
    assert_expected(results["numpy"], expected, baseline)


# ---- 1. weight files: `predict WEIGHTS DATA` ----------------------------------------------------


def lines_of(text: bytes) -> list[bytes]:
    return text.split(b"\n")[:-1]


def joined(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def edit_line(index: int, edit: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """A mutation changing line index (0 is the header comment) of a file."""

    def mutate(text: bytes) -> bytes:
        lines = lines_of(text)
        lines[index] = edit(lines[index])
        return joined(lines)

    return mutate


def first_value(new: bytes, index: int = 2) -> Callable[[bytes], bytes]:
    """Replace the first value on line index (2: of W1, 8: of the output bias b2)."""
    return edit_line(index, lambda line: new + line[line.index(b" ") :])


def swap_blocks(text: bytes) -> bytes:
    lines = lines_of(text)
    return joined([lines[0], *lines[3:5], *lines[1:3], *lines[5:]])


def blanks_and_tabs(text: bytes) -> bytes:
    """Blanks and tabs around every token but the header comment's, and blank-only lines."""
    lines = lines_of(text)
    spaced = [b" \t" + line.replace(b" ", b" \t  ") + b"\t " for line in lines[1:]]
    return joined([lines[0], *spaced, b"  \t"])


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark: dropped at the start of a text file only

# name -> (mutation of the valid weight file, expected result)
WEIGHT_CASES = {
    "intact": (lambda t: t, "same"),
    "bom": (lambda t: BOM + t, "same"),
    "bom_twice": (lambda t: BOM + BOM + t, "refuse"),  # the header line is no comment then
    "blanks_and_tabs": (blanks_and_tabs, "same"),
    "crlf": (lambda t: t.replace(b"\n", b"\r\n"), "same"),
    "comments_and_blank_lines": (lambda t: t.replace(b"\n", b"\n# note 1 2 3\n\n \t\n"), "same"),
    "header_trailing_garbage": (edit_line(0, lambda line: line + b" garbage 12"), "same"),
    # Neither target checks the header line: it is a comment like any other
    "no_header": (lambda t: joined(lines_of(t)[1:]), "same"),
    "other_network_header": (
        edit_line(0, lambda line: b"# symbackprop weights xor float32"),
        "same",
    ),
    "trailing_lines": (lambda t: t + b"garbage\nW1 1\n", "same"),  # a weight file may go on
    "leading_zero_dim": (edit_line(1, lambda line: b"W1 08 4"), "same"),
    "plus_signs": (
        edit_line(
            2, lambda line: b" ".join(v if v[:1] == b"-" else b"+" + v for v in line.split())
        ),
        "same",
    ),
    "missing_value": (edit_line(2, lambda line: line[: line.rindex(b" ")]), "refuse"),
    "extra_value": (edit_line(2, lambda line: line + b" 0.5"), "refuse"),
    "minus_inside": (first_value(b"1.5-2"), "refuse"),
    "comma_inside": (first_value(b"1.5,2"), "refuse"),
    "hex": (first_value(b"0x10"), "refuse"),
    "underscore": (first_value(b"1_0"), "refuse"),
    "underscore_in_dim": (edit_line(1, lambda line: b"W1 0_8 4"), "refuse"),
    "nbsp_after_value": (first_value(b"0.5\xa0"), "refuse"),  # not a blank in C
    "infinity_words": (first_value(b"-Infinity", 8), "changed"),
    "overflow_in_b2": (first_value(b"-1e999", 8), "changed"),  # -inf: output 0 gets 0
    "nan_in_b2": (first_value(b"nan", 8), "changed"),  # all outputs NaN
    "nan_payload": (first_value(b"nan(1)", 8), "refuse"),  # C's strtod would read it
    # NaN rows where x0 > 0 (inf - inf in the softmax), without warnings on stderr
    "overflow_in_W1": (first_value(b"1e999"), "changed"),
    "nan_in_W1": (first_value(b"nan"), "changed"),
    "wrong_dims": (edit_line(1, lambda line: b"W1 4 8"), "refuse"),
    "missing_dim": (edit_line(1, lambda line: b"W1 8"), "refuse"),
    "extra_dim": (edit_line(1, lambda line: b"W1 8 4 1"), "refuse"),
    "float_dim": (edit_line(1, lambda line: b"W1 8.0 4"), "refuse"),
    "misspelt_name": (edit_line(1, lambda line: b"w1 8 4"), "refuse"),
    "indented_comment": (edit_line(3, lambda line: b"  # not a comment\n" + line), "refuse"),
    "truncated": (lambda t: t[: len(t) // 2], "refuse"),
    "truncated_after_block": (lambda t: joined(lines_of(t)[:5]), "refuse"),
    "empty": (lambda t: b"", "refuse"),
    "swapped_blocks": (swap_blocks, "refuse"),
    "nul_in_value": (first_value(b"0.5\0"), "refuse"),
    "nul_in_comment": (lambda t: t + b"# \0\n", "refuse"),  # "not a text file"
    "latin1_in_comment": (lambda t: t + b"# caf\xe9\n", "same"),  # bytes, whatever the locale
    "cr_line_endings": (lambda t: t.replace(b"\n", b"\r"), "refuse"),  # one line: \r is a blank
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
def test_weight_file_agreement(case, c_program, files, tmp_path):
    mutate, expected = WEIGHT_CASES[case]
    path = tmp_path / "mutated.weights"
    path.write_bytes(mutate(files["weights"]))
    assert_predictions_agree(c_program, path, files["data"], path, expected, files["predictions"])


# ---- 2. checkpoints: `train DATA --resume CHECKPOINT --epochs 2` --------------------------------


def checkpoint_line(key: bytes, new: bytes) -> Callable[[bytes], bytes]:
    """Replace the line starting with key (e.g. b"epoch ") by new."""

    def mutate(text: bytes) -> bytes:
        lines = lines_of(text)
        index = next(i for i, line in enumerate(lines) if line.startswith(key))
        lines[index] = new
        return joined(lines)

    return mutate


def drop_block(name: bytes) -> Callable[[bytes], bytes]:
    def mutate(text: bytes) -> bytes:
        lines = lines_of(text)
        index = next(i for i, line in enumerate(lines) if line.split()[0] == name)
        return joined(lines[:index] + lines[index + 2 :])

    return mutate


def swap_hypers(text: bytes) -> bytes:
    lines = lines_of(text)
    lines[5], lines[6] = lines[6], lines[5]  # hyper beta1 and hyper beta2
    return joined(lines)


HUGE = b"99999999999999999999"  # > 2**64

# name -> (mutation of the valid checkpoint (epoch 1 of 2), expected result); results:
# "same" as resuming the intact checkpoint, "changed" (accepted, other weights), "refuse",
# "checkpoint" (the checkpoint's own weights: no epochs are left to train)
CHECKPOINT_CASES = {
    "intact": (lambda t: t, "same"),
    "bom": (lambda t: BOM + t, "same"),
    "crlf": (lambda t: t.replace(b"\n", b"\r\n"), "same"),
    "comments_and_blank_lines": (lambda t: t.replace(b"\n", b"\n# note\n\n\t\n"), "same"),
    "trailing_blanks": (lambda t: t.replace(b"\n", b" \t\n"), "same"),
    "epoch_leading_zero": (checkpoint_line(b"epoch ", b"epoch 01"), "same"),
    "epoch_not_a_number": (checkpoint_line(b"epoch ", b"epoch one"), "refuse"),
    "epoch_float": (checkpoint_line(b"epoch ", b"epoch 1.0"), "refuse"),
    "epoch_negative": (checkpoint_line(b"epoch ", b"epoch -1"), "refuse"),
    "epoch_missing_value": (checkpoint_line(b"epoch ", b"epoch"), "refuse"),
    "epoch_two_values": (checkpoint_line(b"epoch ", b"epoch 1 2"), "refuse"),
    "epoch_done": (checkpoint_line(b"epoch ", b"epoch 7"), "checkpoint"),
    "epoch_max": (checkpoint_line(b"epoch ", b"epoch %d" % (2**63 - 1)), "checkpoint"),
    "epoch_too_large": (checkpoint_line(b"epoch ", b"epoch %d" % 2**63), "refuse"),
    "epoch_huge": (checkpoint_line(b"epoch ", b"epoch " + HUGE), "refuse"),
    "epoch_underscore": (checkpoint_line(b"epoch ", b"epoch 0_1"), "refuse"),
    "epoch_double_blank": (checkpoint_line(b"epoch ", b"epoch  1"), "same"),
    "epoch_tab": (checkpoint_line(b"epoch ", b"epoch\t1"), "same"),
    "epoch_indented": (checkpoint_line(b"epoch ", b" epoch 1"), "refuse"),
    "seed_changed": (checkpoint_line(b"seed ", b"seed 12"), "changed"),
    # strtoull takes a minus sign and wraps: -1 is 2**64 - 1, -(2**64 - 1) is 1
    "seed_negative": (checkpoint_line(b"seed ", b"seed -1"), "changed"),
    "seed_most_negative": (checkpoint_line(b"seed ", b"seed -%d" % (2**64 - 1)), "changed"),
    "seed_too_negative": (checkpoint_line(b"seed ", b"seed -%d" % 2**64), "refuse"),
    "seed_max": (checkpoint_line(b"seed ", b"seed %d" % (2**64 - 1)), "changed"),
    "seed_too_large": (checkpoint_line(b"seed ", b"seed %d" % 2**64), "refuse"),
    "seed_huge": (checkpoint_line(b"seed ", b"seed " + HUGE), "refuse"),
    "step_negative": (checkpoint_line(b"step ", b"step -1"), "refuse"),
    "step_changed": (checkpoint_line(b"step ", b"step 1"), "changed"),
    "step_too_large": (checkpoint_line(b"step ", b"step %d" % 2**63), "refuse"),
    # The step count stops at 2**63 - 1 (C's int64_t) in both targets: no overflow, finite weights
    "step_max": (checkpoint_line(b"step ", b"step %d" % (2**63 - 1)), "changed"),
    "step_near_max": (checkpoint_line(b"step ", b"step %d" % (2**63 - 2)), "changed"),
    "step_huge": (checkpoint_line(b"step ", b"step " + HUGE), "refuse"),
    "hyper_changed": (checkpoint_line(b"hyper eta ", b"hyper eta 0.02"), "changed"),
    "hyper_missing": (checkpoint_line(b"hyper beta2 ", b""), "refuse"),
    "hyper_not_a_number": (checkpoint_line(b"hyper eta ", b"hyper eta fast"), "refuse"),
    "hyper_comma": (checkpoint_line(b"hyper eta ", b"hyper eta 0,01"), "refuse"),
    "hyper_misspelt": (checkpoint_line(b"hyper eta ", b"hyper lr 0.01"), "refuse"),
    "hyper_swapped": (swap_hypers, "refuse"),
    # Hyperparameters must be finite and in the spec's ranges (eta > 0, betas in [0, 1), ...)
    "hyper_nan": (checkpoint_line(b"hyper eta ", b"hyper eta nan"), "refuse"),
    "hyper_inf": (checkpoint_line(b"hyper eta ", b"hyper eta inf"), "refuse"),
    "hyper_eta_zero": (checkpoint_line(b"hyper eta ", b"hyper eta 0"), "refuse"),
    "hyper_eta_negative": (checkpoint_line(b"hyper eta ", b"hyper eta -1"), "refuse"),
    "hyper_eta_huge": (checkpoint_line(b"hyper eta ", b"hyper eta 1e999"), "refuse"),  # inf
    "hyper_beta1_one": (checkpoint_line(b"hyper beta1 ", b"hyper beta1 1"), "refuse"),
    "hyper_beta1_zero": (checkpoint_line(b"hyper beta1 ", b"hyper beta1 0"), "changed"),
    "hyper_beta2_nan": (checkpoint_line(b"hyper beta2 ", b"hyper beta2 -nan"), "refuse"),
    "hyper_eps_negative": (checkpoint_line(b"hyper epsilon ", b"hyper epsilon -1e-8"), "refuse"),
    "hyper_hex": (checkpoint_line(b"hyper eta ", b"hyper eta 0x1p-6"), "refuse"),
    "hyper_underscore": (checkpoint_line(b"hyper eta ", b"hyper eta 0.0_1"), "refuse"),
    "hyper_tab_value": (checkpoint_line(b"hyper eta ", b"hyper eta\t0.02"), "changed"),
    "hyper_tab_in_key": (checkpoint_line(b"hyper eta ", b"hyper\teta 0.01"), "refuse"),
    "nul_in_comment": (lambda t: t + b"# \0\n", "refuse"),
    "latin1_in_comment": (lambda t: t + b"# caf\xe9\n", "same"),
    "cr_line_endings": (lambda t: t.replace(b"\n", b"\r"), "refuse"),
    "trailing_line": (lambda t: t + b"garbage\n", "refuse"),
    "trailing_block": (lambda t: t + b"b2 3\n0 0 0\n", "refuse"),
    "trailing_comment": (lambda t: t + b"# the end\n", "same"),
    "missing_buffer": (drop_block(b"v.b2"), "refuse"),
    "missing_parameter": (drop_block(b"W2"), "refuse"),
    "no_epoch_lines": (lambda t: joined(lines_of(t)[8:]), "refuse"),  # a weight file
    "truncated": (lambda t: t[: len(t) * 2 // 3], "refuse"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_checkpoint_agreement(case, c_program, files, tmp_path):
    mutate, expected = CHECKPOINT_CASES[case]
    path = tmp_path / "mutated.ckpt"
    path.write_bytes(mutate(files["checkpoint"]))
    results = {}
    for target in ("numpy", "c"):
        out_file = tmp_path / f"{target}.weights"
        out = run(
            command(target, c_program),
            "train",
            files["train"],
            "--resume",
            path,
            "--epochs",
            "2",
            "--batch-size",
            BATCH,
            "--out",
            out_file,
            "--quiet",
        )
        if refused(out, path):
            assert not out_file.exists()
            results[target] = None
        else:
            assert out.stdout == ""
            results[target] = flat(M.load(str(out_file)))
            assert np.isfinite(results[target]).all(), target
    assert_agree(results)
    if expected == "checkpoint":
        assert results["numpy"] is not None
        assert close(results["numpy"], files["checkpoint_weights"])
    else:
        assert_expected(results["numpy"], expected, files["resumed_weights"])


# ---- 3. .npy data: `predict WEIGHTS DATA.npy` ---------------------------------------------------


def npy(array: np.ndarray, version=None) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    return buffer.getvalue()


def npy_claiming(shape: tuple, data: bytes = b"\0" * 64, version: bytes = b"\x01\x00") -> bytes:
    """A .npy file of float64 whose header claims shape, followed by data."""
    import io

    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()[:6] + version + buffer.getvalue()[8:] + data


# name -> (the .npy file's bytes from the inputs X, expected result)
NPY_CASES = {
    "float64": (lambda X: npy(X), "same"),
    "float32": (lambda X: npy(X.astype(np.float32)), "same"),  # X is exact in float32
    "version_2": (lambda X: npy(X, (2, 0)), "same"),
    "version_3": (lambda X: npy(X.astype(np.float32), (3, 0)), "same"),
    "label_column": (lambda X: npy(np.column_stack([X, np.zeros(len(X))])), "same"),
    "changed_row": (lambda X: npy(X[::-1].copy()), "changed"),
    "bool": (lambda X: npy(X > 0), "refuse"),
    "one_d": (lambda X: npy(X.ravel()), "refuse"),
    "three_d": (lambda X: npy(X.reshape(2, 3, 4)), "refuse"),
    "three_columns": (lambda X: npy(X[:, :3].copy()), "refuse"),
    "nan": (lambda X: npy(np.where(X[1, 2] == X, np.nan, X)), "refuse"),
    "no_rows": (lambda X: npy(X[:0]), "refuse"),
    "truncated": (lambda X: npy(X)[:-8], "refuse"),
    "not_npy": (lambda X: b"1,2,3,4\n", "refuse"),
    "header_only": (lambda X: npy(X)[:128], "refuse"),
    # Refused before anything is allocated: the data cannot fill the shape the header claims
    "huge_shape": (lambda X: npy_claiming((10**12, 4)), "refuse"),
    "huge_rows_and_columns": (lambda X: npy_claiming((2**40, 2**40)), "refuse"),
    "negative_rows": (lambda X: npy_claiming((-1, 4), X.tobytes()), "refuse"),
    "version_1_1": (lambda X: npy_claiming((6, 4), X.tobytes(), b"\x01\x01"), "refuse"),
    "version_1_0_by_hand": (lambda X: npy_claiming((6, 4), X.tobytes()), "same"),
}

# name -> the reason both targets give for refusing that .npy case, word for word
NPY_REASONS = {
    "not_npy": "not a .npy file of version 1 to 3",
    "version_1_1": "not a .npy file of version 1 to 3",
    "truncated": "184 data bytes for shape (6, 4), expected 192",
    "header_only": "0 data bytes for shape (6, 4), expected 192",
    "huge_shape": "64 data bytes for shape (1000000000000, 4), expected 32000000000000",
}


@pytest.mark.parametrize("case", list(NPY_CASES))
def test_npy_data_agreement(case, c_program, files, tmp_path):
    make, expected = NPY_CASES[case]
    path = tmp_path / "data.npy"
    path.write_bytes(make(files["X"]))
    weights = tmp_path / "good.weights"
    weights.write_bytes(files["weights"])
    assert_predictions_agree(c_program, weights, path, path, expected, files["predictions"])


@pytest.mark.parametrize("case", list(NPY_REASONS))
def test_npy_refusal_reasons_agree(case, c_program, files, tmp_path):
    path = tmp_path / "data.npy"
    path.write_bytes(NPY_CASES[case][0](files["X"]))
    weights = tmp_path / "good.weights"
    weights.write_bytes(files["weights"])
    for target in ("numpy", "c"):
        out = run(command(target, c_program), "predict", weights, path)
        assert out.stderr == f"error: {path}: {NPY_REASONS[case]}\n", (target, out.stderr)


# ---- 4. .csv data: `predict WEIGHTS DATA.csv` ---------------------------------------------------


def second_row_cell(new: bytes) -> Callable[[bytes], bytes]:
    """Replace the first cell of the second row (a first row without a number is a header)."""
    return edit_line(1, lambda line: new + line[line.index(b",") :])


# name -> (mutation of the valid .csv inputs (no header), expected result)
CSV_CASES = {
    "intact": (lambda t: t, "same"),
    "bom": (lambda t: BOM + t, "same"),  # the first row was taken for a header
    "bom_and_header": (lambda t: BOM + b"a,b,c,d\n" + t, "same"),
    "bom_and_crlf": (lambda t: BOM + t.replace(b"\n", b"\r\n"), "same"),
    "bom_on_second_line": (edit_line(1, lambda line: BOM + line), "refuse"),
    "crlf": (lambda t: t.replace(b"\n", b"\r\n"), "same"),
    "blanks_around_cells": (lambda t: t.replace(b",", b" \t, "), "same"),
    "latin1_header": (lambda t: b"caf\xe9,b,c,d\n" + t, "same"),
    "hex": (second_row_cell(b"0x1p-3"), "refuse"),
    "nan_payload": (second_row_cell(b"nan(7)"), "refuse"),
    "underscore": (second_row_cell(b"1_0"), "refuse"),
    "nbsp": (second_row_cell(b"1\xa0"), "refuse"),
    "nul": (lambda t: t + b"\0", "refuse"),
    "cr_line_endings": (
        lambda t: t.replace(b"\n", b"\r"),
        "refuse",  # one error line: C prints control characters in a message as '?'
    ),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_csv_data_agreement(case, c_program, files, tmp_path):
    mutate, expected = CSV_CASES[case]
    path = tmp_path / "data.csv"
    path.write_bytes(mutate(files["data"].read_bytes()))
    weights = tmp_path / "good.weights"
    weights.write_bytes(files["weights"])
    assert_predictions_agree(c_program, weights, path, path, expected, files["predictions"])


# ---- 5. .npy data only NumPy reads --------------------------------------------------------------

ONLY_C_TYPES = "the array must be float64 or float32 (little-endian)"

# name -> (the .npy file's bytes from the inputs X, the inputs NumPy reads from it, the reason the
# C program gives for refusing it): files np.load reads, but not the C program's small reader
NPY_NUMPY_ONLY = {
    "fortran_order": (
        lambda X: npy(np.asfortranarray(X)),
        lambda X: X,
        "the array must be in C order",
    ),
    "int64": (lambda X: npy(np.round(X).astype(np.int64)), np.round, ONLY_C_TYPES),
    "big_endian": (lambda X: npy(X.astype(">f8")), lambda X: X, ONLY_C_TYPES),
    "float16": (lambda X: npy(X.astype(np.float16)), lambda X: X, ONLY_C_TYPES),  # X is exact
    "trailing_bytes": (  # X: 6 rows of 4 float64
        lambda X: npy(X) + b"\0" * 8,
        lambda X: X,
        "200 data bytes for shape (6, 4), expected 192",
    ),
}


@pytest.mark.parametrize("case", NPY_NUMPY_ONLY)
def test_npy_read_by_numpy_only(case, c_program, files, tmp_path):
    """Documented difference: NumPy reads these files, the C program refuses them."""
    make, inputs, reason = NPY_NUMPY_ONLY[case]
    path = tmp_path / "data.npy"
    path.write_bytes(make(files["X"]))
    weights = tmp_path / "good.weights"
    weights.write_bytes(files["weights"])
    out = run(NUMPY, "predict", weights, path)
    assert not refused(out, path)
    assert close(predictions(out), M.forward(files["params"], inputs(files["X"])))
    out = run([c_program], "predict", weights, path)
    assert refused(out, path)
    assert reason in out.stderr, out.stderr
