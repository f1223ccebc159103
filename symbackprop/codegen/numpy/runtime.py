"""The NumPy target's runtime: copied verbatim into every generated ``<name>.py``.

Everything from the line ``def train(`` on is the text the template includes: mini-batch
training, the weight, checkpoint and data files (the formats the C target reads and writes) and
the command line. It is a real module so that it is linted and tested directly, not template
text. The names above the marker stand in for what the generated module defines before it (its
constants, forward pass and optimizer step, and the verbatim copies of symbackprop/core/prng.py,
symbackprop/safe_io.py and symbackprop/codegen/npyfiles.py); they are never copied.
"""

# ruff: noqa: ARG001 (the stand-ins take the generated functions' arguments and ignore them)

import math
import sys

import numpy as np

from symbackprop.codegen.npyfiles import npy_array, npz_data
from symbackprop.core.prng import permutation
from symbackprop.safe_io import (
    _BLANKS,
    MAX_FILE_BYTES,
    _integer,
    _number,
    _text_lines,
    _words,
    check_writable,
    read_bytes,
    write_bytes,
)

__all__ = ["MAX_FILE_BYTES", "check_writable", "npy_array", "npz_data", "permutation",
           "read_bytes", "write_bytes"]  # fmt: skip

# ---- stand-ins for the generated module's own names (not copied) ---------------------------------
NAME = "net"
DTYPE = np.float64
INPUTS = 1
OUTPUTS = 1
MULTI_AXIS = False  # True: the input or the output has several axes (INPUT_SHAPE, OUTPUT_SHAPE)
SEED = 0
LOSS = "mse"
PARAM_SHAPES: dict = {}
TRAINABLE: tuple = ()
HYPER: dict = {"eta": 0.1}
HYPER_RANGES: dict = {"eta": (0.0, math.inf, "> 0")}
TRAIN: dict = {"epochs": 1, "batch_size": 1, "shuffle": True, "validation": 0.0,
               "patience": None, "min_delta": 0.0}  # fmt: skip
STATE_BUFFERS: tuple = ()
OUTPUT = "y"  # the forward pass's output value
LOGITS = "z"  # the value a binary cross-entropy net's output is the sigmoid of
lr_schedule = None  # or the learning rate of epoch e: lr_schedule(base, e)
MIN_ROWS = 1  # the fewest rows of a training-mode batch (2: batch norm over one value per channel)


def init_params(seed=None):
    """Stand-in: the generated module's initial parameters."""
    raise NotImplementedError


def init_state(params):
    """Stand-in: the generated module's optimizer state."""
    raise NotImplementedError


def _forward(params, X):
    """Stand-in: the generated module's forward pass (every intermediate value)."""
    raise NotImplementedError


def forward(params, X):
    """Stand-in: the generated module's output for X."""
    raise NotImplementedError


def loss(params, X, T):
    """Stand-in: the generated module's loss of a batch."""
    raise NotImplementedError


def step(params, state, X, T):
    """Stand-in: the generated module's optimizer step."""
    raise NotImplementedError


def validation_loss(params, X, T):
    """Stand-in: the generated module's loss in evaluation mode."""
    raise NotImplementedError


# ---- the runtime (copied from the next line on) --------------------------------------------------
def train(
    params,
    X,
    T,
    epochs,
    batch_size,
    shuffle=True,
    seed=None,
    state=None,
    progress=None,
    first_epoch=0,
):
    """Mini-batch training in place; returns the mean of the batch losses of each epoch.

    Epoch e visits the samples in the order permutation(seed, e, n) when shuffling. Runs the
    epochs first_epoch .. first_epoch + epochs - 1 (a resumed run starts after its checkpoint);
    progress(e, first_epoch + epochs, mean_loss) is called after each.
    """
    X = np.asarray(X, dtype=DTYPE)
    T = np.asarray(T, dtype=DTYPE)
    seed = SEED if seed is None else seed
    state = init_state(params) if state is None else state
    n = X.shape[0]
    if epochs > 0 and short_batch(n, batch_size):
        raise ValueError(f"batch size {batch_size} leaves a batch of one row of {n}: {ONE_ROW}")
    history = []
    base = HYPER["eta"]  # a schedule's base rate; epoch e trains at lr_schedule(base, e)
    for epoch in range(first_epoch, first_epoch + epochs):
        if lr_schedule is not None:
            HYPER["eta"] = lr_schedule(base, epoch)
        order = permutation(seed, epoch, n) if shuffle else np.arange(n)
        total, batches = 0.0, 0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            total += step(params, state, X[idx], T[idx])
            batches += 1
        history.append(total / batches)
        if progress is not None:
            progress(epoch, first_epoch + epochs, history[-1])
    if lr_schedule is not None:
        HYPER["eta"] = base
    return history


ONE_ROW = ("batch_norm needs more than one value per channel in training mode (as PyTorch: "
           "'Expected more than 1 value per channel when training')")  # fmt: skip


def short_batch(rows, batch_size):
    """True when `rows` rows in batches of `batch_size` make a batch (the last one, or every
    one) of fewer than MIN_ROWS rows: training refuses it before its first step."""
    last = rows - (rows - 1) // batch_size * batch_size  # the last batch's rows
    return rows >= 1 and min(batch_size, last) < MIN_ROWS


def split_validation(X, T, fraction, shuffle=True, seed=None):
    """(X_train, T_train, X_val, T_val): the last rows, floor(n * (1 - fraction)) on, held out
    for validation (as Keras' validation_split), after the seed's shuffle when shuffling: the
    rows in the order permutation(seed, -1, n), the stream before epoch 0's. The C program
    splits the same rows."""
    n = len(X)
    seed = SEED if seed is None else seed
    order = permutation(seed, -1, n) if shuffle else np.arange(n)
    n_train = math.floor(n * (1.0 - fraction))
    if not 1 <= n_train < n:
        raise ValueError(f"validation {fraction:g} of {n} rows leaves no rows to "
                         f"{'train on' if n_train < 1 else 'validate on'}")  # fmt: skip
    fit, held = order[:n_train], order[n_train:]
    return X[fit], T[fit], X[held], T[held]


def train_validated(
    params, X, T, X_val, T_val, epochs, batch_size, shuffle=True, seed=None, state=None,
    progress=None, first_epoch=0, patience=None, min_delta=0.0,
):  # fmt: skip
    """train, epoch by epoch, scoring the validation rows after each (validation_loss: the
    evaluation-mode loss). Epoch e is the best so far when its validation loss is below the
    best before it by more than min_delta. With patience (early stopping, as Keras'
    EarlyStopping(restore_best_weights=True)): stop after `patience` epochs in a row that are
    not the best, and leave params at the best epoch's weights.

    progress(e, first_epoch + epochs, mean_loss, val_loss, best_epoch) is called after each.
    Returns (mean training loss per epoch, validation loss per epoch, best epoch).
    """
    seed = SEED if seed is None else seed
    state = init_state(params) if state is None else state
    run = (
        (epoch, train(params, X, T, 1, batch_size, shuffle, seed, state, None, epoch)[-1])
        for epoch in range(first_epoch, first_epoch + epochs)
    )
    return keep_best(run, params, lambda: validation_loss(params, X_val, T_val),
                     first_epoch + epochs, patience, min_delta, progress)  # fmt: skip


def keep_best(run, params, score, last, patience=None, min_delta=0.0, progress=None):
    """The early-stopping rule of every target (Keras' EarlyStopping(restore_best_weights=True)):
    over run, an iterator of (epoch, mean training loss) that trains as it goes, score() the
    validation loss after each epoch; an epoch is the best so far when its score is below the
    best before it by more than min_delta; with patience, stop after `patience` epochs in a row
    that are not the best, close run (a generator's cleanup writes its weights back first) and
    put the best epoch's weights back into params.

    progress(epoch, last, mean_loss, val_loss, best_epoch) is called after each epoch.
    Returns (mean training loss per epoch, validation loss per epoch, best epoch).
    """
    history, val_history = [], []
    best, best_epoch, kept, wait = math.inf, None, None, 0
    for epoch, mean_loss in run:
        history.append(mean_loss)
        val_history.append(score())
        if val_history[-1] < best - min_delta:
            best, best_epoch, wait = val_history[-1], epoch, 0
            kept = {name: value.copy() for name, value in params.items()}
        else:
            wait += 1
        if progress is not None:
            progress(epoch, last, mean_loss, val_history[-1], best_epoch)
        if patience is not None and wait >= patience:
            break
    if hasattr(run, "close"):
        run.close()
    if patience is not None and kept is not None:
        for name, value in kept.items():
            params[name][...] = value
    return history, val_history, best_epoch


def _blocks(arrays, prefix=""):
    lines = []
    for name, shape in PARAM_SHAPES.items():
        if name not in arrays:
            continue
        values = np.asarray(arrays[name], dtype=np.float64).ravel()
        lines.append(" ".join([prefix + name, *map(str, shape)]))
        lines.append(" ".join(f"{v:.17g}" for v in values))
    return lines


def _write_lines(path, lines):
    """Atomically for a regular file, in place for a device or FIFO (see write_bytes)."""
    write_bytes(path, ("\n".join(lines) + "\n").encode("latin-1"))


def save(params, path):
    """Write the weights as text (17 significant digits: exact), atomically; same format as C."""
    _write_lines(path, [f"# symbackprop weights {NAME} {DTYPE.__name__}", *_blocks(params)])


# ---- text files (weights, checkpoints, .csv) as the C target reads them -------------------------
# Bytes, whatever the locale (latin-1 maps each byte to one character), no NUL byte, lines ending
# at "\n" only (a "\r" is a blank, so "\r\n" works); numbers as C's strtod reads them, less hex:
# Python's float() also takes "1_0" and non-ASCII blanks ("1\xa0"), so it only converts what
# _DECIMAL has matched.
def _read_lines(path):
    """The lines of a weight file or checkpoint that are neither blank nor comments ('#' first)."""
    return [ln for ln in _text_lines(path) if ln.strip(_BLANKS) and not ln.startswith("#")]


def _read_blocks(path, lines, i, names, prefix=""):
    arrays = {}
    for name in names:
        shape = PARAM_SHAPES[name]
        if i + 1 >= len(lines):
            raise ValueError(f"{path}: missing parameter {prefix}{name}")
        head = _words(lines[i])
        if head[0] != prefix + name or tuple(_integer(s) for s in head[1:]) != shape:
            got = lines[i].strip(_BLANKS)
            raise ValueError(f"{path}: expected {prefix}{name} {shape}, got {got[:60]!r}")
        words = _words(lines[i + 1])
        numbers = [_number(s) for s in words]
        if None in numbers:
            bad = words[numbers.index(None)]
            raise ValueError(f"{path}: {prefix}{name}: not a number: {bad[:40]!r}")
        values = np.array(numbers, dtype=np.float64)
        if values.size != math.prod(shape):
            raise ValueError(f"{path}: {name} needs {math.prod(shape)} numbers, got {values.size}")
        arrays[name] = values.reshape(shape).astype(DTYPE)
        i += 2
    return arrays, i


def load(path):
    """Read weights written by save (or by the C target)."""
    return _read_blocks(path, _read_lines(path), 0, PARAM_SHAPES)[0]


def save_checkpoint(params, state, epoch, seed, path):
    """Weights, optimizer state, HYPER, the seed and the epochs done, atomically (text, exact)."""
    lines = [f"# symbackprop checkpoint {NAME} {DTYPE.__name__}"]
    lines += [f"epoch {epoch}", f"seed {seed}", f"step {state['step']}"]
    lines += [f"hyper {name} {float(value):.17g}" for name, value in HYPER.items()]
    lines += _blocks(params)
    for s in STATE_BUFFERS:
        lines += _blocks({name: state[name][s] for name in TRAINABLE}, f"{s}.")
    _write_lines(path, lines)


# The integers of a checkpoint and their ranges [low, high), as the C target reads them: epoch and
# step with strtoll (and >= 0), the seed with strtoull (which takes a minus sign too: -1 is
# 2**64 - 1)
_CHECKPOINT_INTEGERS = {"epoch": (0, 2**63), "seed": (1 - 2**64, 2**64), "step": (0, 2**63)}


def load_checkpoint(path):
    """(params, state, epoch, seed, hyper) from save_checkpoint's file."""
    lines = _read_lines(path)
    fields = {}
    for i, key in enumerate([*_CHECKPOINT_INTEGERS, *(f"hyper {h}" for h in HYPER)]):
        line = lines[i] if i < len(lines) else ""
        words = _words(line[len(key) :])  # "KEY VALUE": blanks after KEY, none before it
        value = None
        if line.startswith(key) and line[len(key) :][:1] in tuple(_BLANKS) and len(words) == 1:
            if key in _CHECKPOINT_INTEGERS:
                low, high = _CHECKPOINT_INTEGERS[key]
                value = _integer(words[0])
                value = value if value is not None and low <= value < high else None
            else:
                value = _number(words[0])
        if value is None:
            raise ValueError(f"{path}: expected the line '{key} ...' (not a checkpoint of {NAME}?)")
        name = key.removeprefix("hyper ")
        if name != key and not HYPER_RANGES[name][0] <= value <= HYPER_RANGES[name][1]:
            raise ValueError(f"{path}: {key} must be a finite number {HYPER_RANGES[name][2]}")
        fields[key] = value
    epoch, seed, k = (fields[key] for key in _CHECKPOINT_INTEGERS)
    hyper = {h: fields[f"hyper {h}"] for h in HYPER}
    params, i = _read_blocks(path, lines, 3 + len(HYPER), PARAM_SHAPES)
    state = init_state(params)
    state["step"] = k
    for s in STATE_BUFFERS:
        buffers, i = _read_blocks(path, lines, i, TRAINABLE, f"{s}.")
        for name in TRAINABLE:
            state[name][s] = buffers[name]
    if i != len(lines):
        raise ValueError(f"{path}: not a checkpoint of {NAME}")
    return params, state, epoch, seed, hyper


# ---- command line -------------------------------------------------------------------------------


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _refuse(path, exc):
    """_fail with the message of exc, which names path or gets it in front; an OSError's is the
    system's (strerror), as the C program prints it."""
    message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    _fail(message if message.startswith(f"{path}: ") else f"{path}: {message}")


def load_data(path):
    """X [n, INPUTS] and T [n, OUTPUTS] from .npz (X and T, or y labels), .npy or .csv
    (with MULTI_AXIS, a .npz may hold X [n, *INPUT_SHAPE] and T [n, *OUTPUT_SHAPE]; rows are
    flattened in C order)."""
    if path.endswith(".npz"):
        try:
            X, T = npz_data(path)
        except (OSError, EOFError, ValueError, TypeError, MemoryError) as exc:
            _refuse(path, exc)
        if MULTI_AXIS and X.ndim > 2:  # [n, *INPUT_SHAPE]
            X = X.reshape(len(X), -1)
        if MULTI_AXIS and T.ndim > 2:  # [n, *OUTPUT_SHAPE], or labels [n, ...]
            T = T.reshape(len(T), -1)
    else:
        data = _table(path)
        X, T = data[:, :INPUTS], data[:, INPUTS:]
    if X.ndim != 2 or X.shape[1] != INPUTS:
        _fail(f"{path}: X needs {INPUTS} columns, got shape {X.shape}")
    if X.shape[0] == 0:
        _fail(f"{path}: no data rows")
    if T.ndim == 2 and T.shape[1] == 1 and OUTPUTS > 1:
        T = T[:, 0]
    if T.shape[:1] != X.shape[:1] or T.ndim > 2:
        _fail(f"{path}: targets need {OUTPUTS} columns for {X.shape[0]} samples, got {T.shape}")
    if not (np.isfinite(X).all() and np.isfinite(T).all()):
        _fail(f"{path}: data contains NaN or infinity")
    if T.ndim == 1:
        if LOSS != "cross_entropy" and OUTPUTS == 1:
            T = T[:, None]
        else:
            if ((np.floor(T) != T) | (T < 0) | (T > OUTPUTS - 1)).any():
                _fail(f"{path}: labels must be integers 0..{OUTPUTS - 1}")
            T = np.eye(OUTPUTS)[T.astype(np.int64)]
    if T.shape != (X.shape[0], OUTPUTS):
        _fail(f"{path}: targets need {OUTPUTS} columns for {X.shape[0]} samples, got {T.shape}")
    if LOSS == "cross_entropy":
        bad = np.flatnonzero((T < 0).any(axis=1) | (np.abs(T.sum(axis=1) - 1) > 1e-6))
        if bad.size:
            _fail(f"{path}: row {bad[0] + 1}: cross-entropy targets must be >= 0 and sum to 1")
    if LOSS == "binary_cross_entropy":
        bad = np.flatnonzero(((T < 0) | (T > 1)).any(axis=1))
        if bad.size:
            _fail(f"{path}: row {bad[0] + 1}: binary cross-entropy targets must be in [0, 1]")
    return X.astype(DTYPE), T.astype(DTYPE)


def _read_npy(path):
    """A 2-D .npy table, laid out like a .csv file (the C program reads these too)."""
    data = npy_array(path)
    if data.ndim != 2 or data.dtype.kind not in "fiu":
        _fail(f"{path}: the array must be 2-D and numeric, got {data.dtype} {data.shape}")
    return data.astype(np.float64)


def _read_csv(path):
    """The numbers of a .csv file [rows, columns]: an optional header, then equally long rows."""
    rows, width, first = [], None, True
    for lineno, line in enumerate(_text_lines(path), 1):
        if not line.strip(_BLANKS):
            continue
        cells = line.split(",")
        if first:
            first = False
            if _number(cells[0]) is None:
                continue
        if width is None:
            width = len(cells)
        if len(cells) != width:
            _fail(f"{path}: line {lineno}: expected {width} values like the first row")
        row = [_number(cell) for cell in cells]
        if None in row:
            k = row.index(None)
            bad = cells[k].strip(_BLANKS)[:40]
            _fail(f"{path}: line {lineno}, column {k + 1}: not a number: {bad!r}")
        rows.append(row)
    if not rows:
        _fail(f"{path}: no data rows")
    return np.array(rows, dtype=np.float64)


@np.errstate(over="ignore")
def accuracy(params, X, T):
    """Fraction of samples classified right (classifiers only), else None."""
    Y = _forward(params, X)[OUTPUT]
    T = np.asarray(T).reshape(Y.shape)
    if LOSS == "cross_entropy":
        return float((Y.argmax(axis=-1) == T.argmax(axis=-1)).mean())
    if LOSS == "binary_cross_entropy":
        logit = _forward(params, X)[LOGITS]
        return float(((logit > 0) == (T > 0.5)).mean())
    return None


class _Diverged(Exception):
    """An epoch ended with a mean loss or a weight that is not finite: the command line stops,
    saves the weights of the epoch before and exits with status 1."""

    def __init__(self, epoch, mean_loss, finite_weights):
        super().__init__(epoch, mean_loss, finite_weights)
        self.epoch, self.mean_loss, self.finite_weights = epoch, mean_loss, finite_weights

    def message(self, out):
        why = f"loss {self.mean_loss:.6g}" + ("" if self.finite_weights else ", weights not finite")
        kept = f"the weights of epoch {self.epoch}" if self.epoch else "the initial weights"
        return f"training diverged at epoch {self.epoch + 1} ({why}); saved {kept} to {out}"


def main(argv=None):
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # a usage error is bad input too: one line, status 2
            _fail(f"{self.prog}: {message}")

    parser = Parser(prog=f"{NAME}.py", description=f"Train or run '{NAME}'.")
    sub = parser.add_subparsers(dest="command", required=True)  # of Parser, too
    tr = sub.add_parser("train", help="train on DATA (.csv, .npy or .npz)")
    tr.add_argument("data")
    tr.add_argument("--epochs", type=int, default=TRAIN["epochs"])
    tr.add_argument("--batch-size", type=int, default=TRAIN["batch_size"])
    tr.add_argument("--lr", default=None)
    tr.add_argument("--seed", type=int, default=None)
    tr.add_argument("--init", metavar="WEIGHTS", help="start from saved weights")
    tr.add_argument("--out", metavar="WEIGHTS", default=f"{NAME}.weights")
    tr.add_argument(
        "--checkpoint", metavar="FILE", help="save weights, optimizer state and epoch every epoch"
    )
    tr.add_argument("--resume", metavar="FILE", help="continue a checkpoint up to --epochs in all")
    tr.add_argument("--quiet", action="store_true")
    pr = sub.add_parser("predict", help="print the outputs for DATA, one row per sample")
    pr.add_argument("weights")
    pr.add_argument("data")
    args = parser.parse_args(argv)
    if args.command == "predict":
        X, _ = load_data(args.data) if args.data.endswith(".npz") else (_inputs(args.data), None)
        params = _read_weights(args.weights)
        with np.errstate(all="ignore"):  # inf - inf in a softmax gives NaN, silently as in C
            Y = forward(params, X)
        for row in Y.reshape(len(Y), -1):
            print(",".join(f"{v:.17g}" for v in row))
        return 0
    if args.epochs < 1 or args.batch_size < 1:
        _fail("--epochs and --batch-size must be at least 1")
    lr = None if args.lr is None else _number(args.lr)
    low, high, rule = HYPER_RANGES["eta"]
    if args.lr is not None and not (lr is not None and low <= lr <= high):
        _fail(f"--lr must be a finite number {rule}")
    if args.init and args.resume:
        _fail("--init or --resume, not both")
    for path in (args.out, args.checkpoint):  # now, not after training
        try:
            if path:
                check_writable(path)
        except OSError as exc:
            _refuse(path, exc)
    X, T = load_data(args.data)
    seed = SEED if args.seed is None else args.seed
    first = 0
    if args.resume:
        try:
            params, state, first, seed, hyper = load_checkpoint(args.resume)
        except (OSError, ValueError) as exc:
            _refuse(args.resume, exc)
        HYPER.update(hyper)
    else:
        params = _read_weights(args.init) if args.init else init_params(seed)
        state = init_state(params)
    if lr is not None:
        HYPER["eta"] = lr
    if args.resume and TRAIN["patience"] is not None:
        _fail("--resume: not with train.early_stopping (the best epoch is not in a checkpoint)")
    if TRAIN["validation"]:
        try:
            X, T, X_val, T_val = split_validation(X, T, TRAIN["validation"], TRAIN["shuffle"], seed)
        except ValueError as exc:
            _refuse(args.data, exc)
    base_lr = HYPER["eta"]
    kept = {name: value.copy() for name, value in params.items()}

    def progress(epoch, epochs, mean_loss, val_loss=None, best=None):
        finite = all(np.isfinite(value).all() for value in params.values())
        if not (finite and math.isfinite(mean_loss)):
            raise _Diverged(epoch, mean_loss, finite)
        for name, value in params.items():  # the weights of the last epoch that did not diverge
            kept[name][...] = value
        every = max(1, epochs // 20)
        if not args.quiet and (epoch % every == 0 or epoch == epochs - 1):
            acc = accuracy(params, X, T)
            extra = "" if val_loss is None else f"  val_loss {val_loss:.6g}"
            extra += "" if acc is None else f"  accuracy {acc:.4f}"
            if lr_schedule is not None:  # the rate this epoch trained at
                extra += f"  lr {lr_schedule(base_lr, epoch):.6g}"
            if TRAIN["patience"] is not None and best is not None:
                extra += f"  best epoch {best + 1}"
            print(f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  loss {mean_loss:.6g}{extra}")
        if args.checkpoint:
            try:
                save_checkpoint(params, state, epoch + 1, seed, args.checkpoint)
            except OSError as exc:
                _refuse(args.checkpoint, exc)

    epochs = max(0, args.epochs - first)
    if epochs > 0 and short_batch(len(X), args.batch_size):  # as PyTorch would at that batch
        _fail(f"{args.data}: --batch-size: {args.batch_size} leaves a batch of one row of "
              f"{len(X)} training rows; {ONE_ROW}")  # fmt: skip
    diverged = stopping = None
    try:
        with np.errstate(all="ignore"):  # a diverging run overflows: it is reported below
            shuffle = TRAIN["shuffle"]
            if TRAIN["validation"]:
                stopping = train_validated(
                    params, X, T, X_val, T_val, epochs, args.batch_size, shuffle, seed, state,
                    progress, first, TRAIN["patience"], TRAIN["min_delta"],
                )  # fmt: skip
            else:
                train(params, X, T, epochs, args.batch_size, shuffle, seed, state, progress, first)
    except _Diverged as exc:
        diverged = exc
        for name, value in kept.items():
            params[name][...] = value
    if stopping is not None and stopping[2] is not None and TRAIN["patience"] is not None:
        history, val_history, best = stopping
        ran = f"stopped after epoch {first + len(history)}; " if len(history) < epochs else ""
        if not args.quiet:
            print(f"early stopping: {ran}kept the weights of epoch {best + 1} "
                  f"(val_loss {val_history[best - first]:.6g})")  # fmt: skip
    try:
        save(params, args.out)
    except OSError as exc:
        _refuse(args.out, exc)
    if diverged is not None:
        print(f"error: {diverged.message(args.out)}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"saved weights to {args.out}")
    return 0


def _read_weights(path):
    try:
        return load(path)
    except (OSError, ValueError) as exc:
        _refuse(path, exc)


def _table(path):
    """The numbers of a .npy or .csv file [rows, columns]; a one-line error if it cannot be read."""
    try:
        return _read_npy(path) if path.endswith(".npy") else _read_csv(path)
    except (OSError, EOFError, KeyError, ValueError, TypeError, MemoryError) as exc:
        _refuse(path, exc)


def _inputs(path):
    data = _table(path)
    if data.shape[0] == 0:
        _fail(f"{path}: no data rows")
    if data.shape[1] < INPUTS:
        _fail(f"{path}: needs {INPUTS} input columns")
    if not np.isfinite(data[:, :INPUTS]).all():
        _fail(f"{path}: data contains NaN or infinity")
    return data[:, :INPUTS].astype(DTYPE)


if __name__ == "__main__":
    sys.exit(main())
