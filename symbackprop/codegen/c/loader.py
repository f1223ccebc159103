"""Load the generated C target into Python with ctypes and expose the NumPy module's functions
with the same signatures, so one test harness drives both targets (building is in ``c_build``).
"""

from __future__ import annotations

import ctypes
import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from ...core.derivation import Derivation
from ...core.layers.normalization import ONE_ROW, short_batch_error
from ...spec.errors import SpecError
from ..files import write_files
from ..npyfiles import npz_data
from ..program import lower
from .backend import files
from .build import CompileError, build_library, build_program, network_name
from .validated import ValidationMixin

_PROGRESS = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_long, ctypes.c_long, ctypes.c_double, ctypes.c_void_p
)


# The library's functions: name -> (result, arguments). P, S, G: pointers to the params, state and
# grads structs; V void*; L long; I int; U uint64_t; D double; C char*; Z size_t; F the progress
# callback; R void**; Q long*; '' void.
_PROTOTYPES = {
    "init_params": ("", "PU"),
    "forward": ("", "PVLVV"),
    "loss": ("D", "PVVLV"),
    "loss_and_grad": ("D", "PVVLGV"),
    "loss_at": ("D", "PVVLJV"),
    "loss_and_grad_at": ("D", "PVVLJGV"),
    "eval_loss": ("D", "PVVLV"),
    "init_state": ("", "S"),
    "step": ("D", "PSVVLV"),
    "train_from": ("I", "PSVVLLLLIUVFVV"),
    "validation_split": ("L", "LDIUV"),
    "accuracy": ("D", "PVVLV"),
    "save": ("I", "PCCZ"),
    "load": ("I", "PCCZ"),
    "read_data": ("I", "CIRRQCZ"),
    "free_data": ("", "VV"),
    "split_table": ("I", "VLLIVVCZ"),
    "layout": ("Z", "I"),
}


# newer than some generated libraries still in use; eval_loss is generated only where the two
# modes differ (elsewhere it would be loss)
_OPTIONAL = ("validation_split", "eval_loss")


def _fail(message: str):
    """Bad data: the library raises (the CLI prints it as one line and exits 2)."""
    raise SpecError("", message)


class CModule(ValidationMixin):
    """The C target behind the NumPy module's interface (arrays in, arrays out).

    Calls share one workspace, guarded by a lock. ``HYPER`` may be changed between calls, as in
    the NumPy module.
    """

    def __init__(self, library: Path, name: str):
        self.path = library
        self._lib = ctypes.CDLL(str(library))
        describe = getattr(self._lib, f"{name}_metadata")
        describe.restype = ctypes.c_char_p
        self.meta = meta = json.loads(describe().decode())
        self.NAME = meta["name"]
        self.DTYPE = np.dtype(meta["dtype"]).type
        self.INPUTS, self.OUTPUTS, self.SEED = meta["inputs"], meta["outputs"], meta["seed"]
        self.INPUT_SHAPE = tuple(meta["input_shape"])
        self.OUTPUT_SHAPE = tuple(meta["output_shape"])
        self.LOSS = meta["loss"]
        self.PARAM_SHAPES = {n: tuple(s) for n, s, _ in meta["params"]}
        self.TRAINABLE = tuple(n for n, _, t in meta["params"] if t)
        self.HYPER = dict(meta["hyper"])
        self.TRAIN = dict(meta["train"])
        self._real = ctypes.c_float if meta["dtype"] == "float32" else ctypes.c_double
        self._structs()
        self._lock = threading.RLock()  # progress callbacks may call back in

    def _structs(self) -> None:
        """ctypes mirrors of the C structs (checked against the library's sizes and offsets)."""
        real = self._real

        def struct(name: str, fields: list):
            return type(name, (ctypes.Structure,), {"_fields_": fields})

        def array(name: str):
            return real * max(int(np.prod(self.PARAM_SHAPES[name])), 1)

        self._Params = struct("Params", [(n, array(n)) for n in self.PARAM_SHAPES])
        self._Grads = struct(
            "Grads", [(n, array(n)) for n in self.TRAINABLE] or [("_", ctypes.c_char)]
        )
        hyper = struct("Hyper", [(h, ctypes.c_double) for h in self.HYPER])
        states = [(s, self._Grads) for s in self.meta["state"]]
        self._State = struct("State", [("hyper", hyper), ("step", ctypes.c_int64), *states])
        types = {
            "P": ctypes.POINTER(self._Params),
            "S": ctypes.POINTER(self._State),
            "G": ctypes.POINTER(self._Grads),
            "V": ctypes.c_void_p,
            "L": ctypes.c_long,
            "J": ctypes.c_int64,
            "I": ctypes.c_int,
            "U": ctypes.c_uint64,
            "D": ctypes.c_double,
            "C": ctypes.c_char_p,
            "Z": ctypes.c_size_t,
            "F": _PROGRESS,
            "R": ctypes.POINTER(ctypes.c_void_p),
            "Q": ctypes.POINTER(ctypes.c_long),
        }
        for fn, (result, args) in _PROTOTYPES.items():
            if fn in _OPTIONAL and not hasattr(self._lib, f"{self.NAME}_{fn}"):
                continue  # a library generated before it (split_validation then fails)
            f = getattr(self._lib, f"{self.NAME}_{fn}")
            f.restype, f.argtypes = types.get(result), [types[a] for a in args]
            setattr(self, f"_{fn}", f)
        expected = [
            ctypes.sizeof(self._Params),
            ctypes.sizeof(self._Grads),
            ctypes.sizeof(self._State),
            None,
            self._State.step.offset,
            *(getattr(self._State, s).offset for s, _ in states),
        ]
        for i, value in enumerate(expected):
            if value is not None and self._layout(i) != value:
                raise RuntimeError(f"{self.path}: layout {i} is {self._layout(i)}, not {value}")
        self._ws = (ctypes.c_double * ((self._layout(3) + 7) // 8))()

    # ---- marshalling --------------------------------------------------------------------------

    def _pack(self, params: dict):
        out = self._Params()
        for name, shape in self.PARAM_SHAPES.items():
            value = np.asarray(params[name], dtype=self.DTYPE)
            if value.shape != shape:
                raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
            np.ctypeslib.as_array(getattr(out, name))[:] = value.reshape(-1)
        return out

    def _unpack(self, struct, names) -> dict:
        return {
            n: np.ctypeslib.as_array(getattr(struct, n)).copy().reshape(self.PARAM_SHAPES[n])
            for n in names
        }

    def _pack_state(self, state: dict):
        out = self._State()
        for h, value in self.HYPER.items():
            setattr(out.hyper, h, float(value))
        out.step = int(state["step"])
        for s in self.meta["state"]:
            buffers = getattr(out, s)
            for name in self.TRAINABLE:
                value = np.asarray(state[name][s], dtype=self.DTYPE).reshape(-1)
                np.ctypeslib.as_array(getattr(buffers, name))[:] = value
        return out

    def _unpack_state(self, struct, state: dict) -> None:
        state["step"] = int(struct.step)
        for s in self.meta["state"]:
            values = self._unpack(getattr(struct, s), self.TRAINABLE)
            for name in self.TRAINABLE:
                state[name][s] = values[name]

    def _rows(self, X, T=None):
        """X [n, INPUTS] and T [n, OUTPUTS] as C arrays (from [n, *shape] too: C order)."""
        X = np.ascontiguousarray(X, dtype=self.DTYPE)
        if X.ndim > 2 and X.shape[1:] == self.INPUT_SHAPE:
            X = X.reshape(len(X), -1)
        if X.ndim != 2 or X.shape[1] != self.INPUTS:
            raise ValueError(f"X must have shape [n, {self.INPUTS}], got {X.shape}")
        if T is None:
            return X, None, X.shape[0]
        T = np.ascontiguousarray(T, dtype=self.DTYPE)
        if T.ndim > 2 and T.shape[1:] == self.OUTPUT_SHAPE:
            T = T.reshape(len(T), -1)
        if T.shape != (X.shape[0], self.OUTPUTS):
            raise ValueError(f"T must have shape [{X.shape[0]}, {self.OUTPUTS}], got {T.shape}")
        return X, T, X.shape[0]

    @staticmethod
    def _ptr(a):
        return None if a is None else a.ctypes.data_as(ctypes.c_void_p)

    def _ws_ptr(self):
        return ctypes.cast(self._ws, ctypes.c_void_p)

    # ---- the NumPy module's functions -------------------------------------------------------

    def init_params(self, seed: int | None = None) -> dict:
        """The initial parameters (bit-identical to the NumPy target's)."""
        p = self._Params()
        self._init_params(p, (self.SEED if seed is None else seed) % 2**64)
        return self._unpack(p, self.PARAM_SHAPES)

    def forward(self, params: dict, X) -> np.ndarray:
        """The network's output for X [n, INPUTS] -> [n, OUTPUTS]."""
        X, _, n = self._rows(X)
        Y = np.empty((n, self.OUTPUTS), dtype=self.DTYPE)
        with self._lock:
            self._forward(self._pack(params), self._ptr(X), n, self._ptr(Y), self._ws_ptr())
        return Y.reshape(n, *self.OUTPUT_SHAPE)

    def _too_few(self, E: float, n: int) -> float:
        """E, or the ValueError of a training batch the library refused (NaN for fewer than
        ``min_rows`` rows: batch norm over one value per channel, as PyTorch refuses it)."""
        if n < self.meta.get("min_rows", 1) and np.isnan(E):
            raise ValueError(f"a training batch of {n} row: {ONE_ROW}")
        return float(E)

    def loss(self, params: dict, X, T, step: int = 0) -> float:
        """The training-mode loss E of a batch (dropout masks of step count ``step``)."""
        X, T, n = self._rows(X, T)
        with self._lock:
            E = self._loss_at(
                self._pack(params), self._ptr(X), self._ptr(T), n, step, self._ws_ptr()
            )
        return self._too_few(E, n)

    def loss_and_grad(self, params: dict, X, T, step: int = 0) -> tuple[float, dict]:
        """E and dE/dparam for every trainable parameter (training mode, masks at ``step``)."""
        X, T, n = self._rows(X, T)
        g = self._Grads()
        with self._lock:
            E = self._loss_and_grad_at(
                self._pack(params), self._ptr(X), self._ptr(T), n, step, g, self._ws_ptr()
            )
        return self._too_few(E, n), self._unpack(g, self.TRAINABLE)

    def init_state(self, params: dict) -> dict:
        """Optimizer state: the step count and zero buffers per trainable parameter."""
        return {
            "step": 0,
            **{
                n: {s: np.zeros(self.PARAM_SHAPES[n], dtype=self.DTYPE) for s in self.meta["state"]}
                for n in self.TRAINABLE
            },
        }

    def step(self, params: dict, state: dict, X, T) -> float:
        """One optimizer step in place; returns the loss before it."""
        X, T, n = self._rows(X, T)
        P, S = self._pack(params), self._pack_state(state)
        with self._lock:
            E = self._step(P, S, self._ptr(X), self._ptr(T), n, self._ws_ptr())
        self._too_few(E, n)  # refused: params and state unchanged
        for name, value in self._unpack(P, self.PARAM_SHAPES).items():
            params[name][...] = value
        self._unpack_state(S, state)
        return float(E)

    def train(
        self,
        params: dict,
        X,
        T,
        epochs: int,
        batch_size: int,
        shuffle: bool = True,
        seed: int | None = None,
        state: dict | None = None,
        progress=None,
        first_epoch: int = 0,
    ) -> list:
        """Mini-batch training in place (the NumPy module's order) of the epochs first_epoch ..
        first_epoch + epochs - 1; mean batch loss per epoch."""
        X, T, n = self._rows(X, T)
        state = self.init_state(params) if state is None else state
        P, S = self._pack(params), self._pack_state(state)
        history = np.zeros(max(epochs, 0))
        errors: list[BaseException] = []

        def report(epoch, total, mean_loss, _context):
            try:
                for name, value in self._unpack(P, self.PARAM_SHAPES).items():
                    params[name][...] = value
                progress(epoch, total, mean_loss)
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised after the C call returns
                errors.append(exc)
                return 1

        callback = _PROGRESS(report) if progress is not None else _PROGRESS()
        seed = (self.SEED if seed is None else seed) % 2**64
        with self._lock:
            rc = self._train_from(
                P,
                S,
                self._ptr(X),
                self._ptr(T),
                n,
                first_epoch,
                epochs,
                batch_size,
                int(bool(shuffle)),
                seed,
                self._ptr(history),
                callback,
                None,
                self._ws_ptr(),
            )
        if errors:
            raise errors[0]
        if rc == -2:
            raise short_batch_error(batch_size, n)
        if rc < 0:
            raise ValueError(
                f"train: bad arguments (n={n}, epochs={epochs}, "
                f"batch_size={batch_size}) or out of memory"
            )
        for name, value in self._unpack(P, self.PARAM_SHAPES).items():
            params[name][...] = value
        self._unpack_state(S, state)
        return [float(v) for v in history]

    def accuracy(self, params: dict, X, T) -> float | None:
        """Fraction of samples classified right (classifiers only), else None."""
        X, T, n = self._rows(X, T)
        with self._lock:
            acc = self._accuracy(self._pack(params), self._ptr(X), self._ptr(T), n, self._ws_ptr())
        return None if acc < 0 else float(acc)

    def save(self, params: dict, path) -> None:
        """Write the weights (the NumPy target's text format), atomically."""
        err = ctypes.create_string_buffer(1024)
        if self._save(self._pack(params), os.fsencode(path), err, len(err)) != 0:
            raise OSError(err.value.decode(errors="replace"))

    def load(self, path) -> dict:
        """Read weights written by either target."""
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        p, err = self._Params(), ctypes.create_string_buffer(1024)
        if self._load(p, os.fsencode(path), err, len(err)) != 0:
            raise ValueError(err.value.decode(errors="replace"))
        return self._unpack(p, self.PARAM_SHAPES)

    def load_data(self, path) -> tuple[np.ndarray, np.ndarray]:
        """X and T from .csv or .npy (the C reader) or .npz; bad data: SpecError (one line)."""
        path = str(path)
        err = ctypes.create_string_buffer(1024)
        if path.endswith(".npz"):
            return self._load_npz(path, err)
        X, T, n = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_long()
        if self._read_data(os.fsencode(path), 1, X, T, n, err, len(err)) != 0:
            _fail(err.value.decode(errors="replace"))
        try:
            real = self._real
            xs = np.ctypeslib.as_array(ctypes.cast(X, ctypes.POINTER(real)), (n.value, self.INPUTS))
            ts = np.ctypeslib.as_array(
                ctypes.cast(T, ctypes.POINTER(real)), (n.value, self.OUTPUTS)
            )
            return xs.copy(), ts.copy()
        finally:
            self._free_data(X, T)

    def _load_npz(self, path: str, err) -> tuple[np.ndarray, np.ndarray]:
        """X and T of a .npz file, read and refused as the NumPy module does it."""
        try:
            X, T = npz_data(path)
        except (OSError, EOFError, ValueError, TypeError, MemoryError) as exc:
            _fail(f"{path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
        X = X.reshape(len(X), -1) if X.ndim > 2 else X
        T = T.reshape(len(T), -1) if T.ndim > 2 else T
        if X.ndim != 2 or T.ndim not in (1, 2) or T.shape[0] != X.shape[0]:
            _fail(f"{path}: X [n, {self.INPUTS}] and T [n, {self.OUTPUTS}] (or y [n]) needed")
        table = np.ascontiguousarray(np.hstack([X, T.reshape(X.shape[0], -1)]))
        n = X.shape[0]
        xs = np.empty((n, self.INPUTS), dtype=self.DTYPE)
        ts = np.empty((n, self.OUTPUTS), dtype=self.DTYPE)
        if (
            self._split_table(
                self._ptr(table), n, table.shape[1], 1, self._ptr(xs), self._ptr(ts), err, len(err)
            )
            != 0
        ):
            _fail(f"{path}: {err.value.decode(errors='replace')}")
        return xs, ts


def load_c(directory: str | Path, cflags: list[str] | None = None, blas: bool = False) -> CModule:
    """Compile (if needed) and load the C target in ``directory`` behind the NumPy module's
    functions. Honours ``$CC`` and ``$CFLAGS``; ``blas`` links cblas (``$BLAS_LIBS``)."""
    return CModule(build_library(directory, cflags, blas), network_name(directory))


def c_module(d: Derivation, directory: str | Path | None = None, **options) -> CModule:
    """Generate the C target of ``d`` into ``directory`` (a temporary one by default), load it."""
    folder = Path(directory or tempfile.mkdtemp(prefix="symbackprop-c-"))
    write_files(folder, files(lower(d)), force=True)
    return load_c(folder, **options)


__all__ = ["CModule", "CompileError", "build_library", "build_program", "c_module", "load_c"]
