"""Load the generated torch module into this process, and drive it behind the NumPy module's
functions (arrays in, arrays out), so ``symbackprop train --target torch``, ``check`` and the
tests use every target alike.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from ...core import prng
from ...core.derivation import Derivation
from ...core.layers.normalization import short_batch, short_batch_error
from ..numpy.loader import load_numpy
from ..numpy.runtime import keep_best


def load_torch(path: str | Path) -> ModuleType:
    """Import a generated ``<name>_torch.py`` from its file, as load_numpy does (it registers
    its own custom operators, so importing it twice is fine)."""
    return load_numpy(path)


class TorchTarget:
    """The generated Model and make_optimizer behind the NumPy module's functions.

    ``step`` and ``train`` are torch.optim steps on a Model (the state holds it and its
    optimizer); ``train`` visits the batches in the NumPy module's order (the portable
    permutation). Reading data files and the accuracy shown while training are the NumPy
    module's (``numpy``), so every target refuses the same files with the same words.
    """

    def __init__(self, module: ModuleType, numpy: ModuleType):
        self.module, self._numpy = module, numpy
        self.NAME, self.INPUTS, self.OUTPUTS = module.NAME, module.INPUTS, module.OUTPUTS
        self.SEED, self.LOSS, self.TRAIN = module.SEED, module.LOSS, dict(module.TRAIN)
        self.DTYPE = np.dtype(str(module.DTYPE).removeprefix("torch.")).type
        self.PARAM_SHAPES = dict(module.PARAM_SHAPES)
        self.TRAINABLE = tuple(module.TRAINABLE)
        self._model = module.Model()

    # ---- parameters between NumPy arrays and a Model ------------------------------------------

    def _set(self, model, params: dict) -> None:
        with torch.no_grad():
            for name in self.PARAM_SHAPES:
                getattr(model, name).copy_(torch.as_tensor(np.asarray(params[name])))

    def _get(self, model, params: dict) -> None:
        """Copy the model's parameters into the arrays of ``params``, in place."""
        for name in self.PARAM_SHAPES:
            params[name][...] = getattr(model, name).detach().numpy()

    def _tensor(self, value) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value, dtype=self.DTYPE))

    # ---- the NumPy module's functions ---------------------------------------------------------

    def init_params(self, seed: int | None = None) -> dict:
        """The initial parameters (bit-identical to the NumPy target's)."""
        return {k: v.numpy() for k, v in self.module.init_params(seed).items()}

    def forward(self, params: dict, X) -> np.ndarray:
        self._set(self._model, params)
        with torch.no_grad():
            return self._model(self._tensor(X)).numpy()

    def _at(self, step: int) -> dict:
        """loss's step argument where the Model has one (training and evaluation differ)."""
        return {"step": step} if "step" in inspect.signature(self._model.loss).parameters else {}

    def loss(self, params: dict, X, T, step: int = 0) -> float:
        self._set(self._model, params)
        with torch.no_grad():
            return float(self._model.loss(self._tensor(X), self._tensor(T), **self._at(step)))

    def loss_and_grad(self, params: dict, X, T, step: int = 0) -> tuple[float, dict]:
        """E and dE/dparam for every trainable parameter, by E.backward()."""
        model = self._model
        self._set(model, params)
        model.zero_grad(set_to_none=True)
        E = model.loss(self._tensor(X), self._tensor(T), **self._at(step))
        E.backward()
        grads = {n: getattr(model, n).grad.numpy().copy() for n in self.TRAINABLE}
        return float(E.detach()), grads

    def init_state(self, params: dict) -> dict:
        """The step count, and a Model with the spec's torch.optim optimizer."""
        model = self.module.Model()
        self._set(model, params)
        return {
            "step": 0,
            "model": model,
            "optimizer": self.module.make_optimizer(model.parameters()),
        }

    def _step(self, state: dict, X: torch.Tensor, T: torch.Tensor) -> float:
        model, optimizer = state["model"], state["optimizer"]
        optimizer.zero_grad()
        E = model.loss(X, T)
        E.backward()
        self.module.clip_gradients([p for p in model.parameters() if p.requires_grad])
        optimizer.step()
        state["step"] += 1
        return float(E.detach())

    def step(self, params: dict, state: dict, X, T) -> float:
        """One optimizer step in place; returns the loss before it."""
        self._set(state["model"], params)
        E = self._step(state, self._tensor(X), self._tensor(T))
        self._get(state["model"], params)
        return E

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
    ) -> list:
        """Mini-batch training in place (the NumPy module's batches); mean loss per epoch."""
        history = []
        run = self._epochs(params, X, T, epochs, batch_size, shuffle, seed, state)
        try:
            for epoch, mean_loss in run:
                history.append(mean_loss)
                if progress is not None:
                    progress(epoch, epochs, mean_loss)
        finally:
            run.close()  # the base rate back now, not when the generator is collected
        return history

    def _epochs(self, params, X, T, epochs, batch_size, shuffle, seed, state):
        """Train epoch by epoch, yielding (epoch, mean loss) with params holding its weights."""
        X, T = self._tensor(X), self._tensor(T)
        seed = self.SEED if seed is None else seed
        state = self.init_state(params) if state is None else state
        self._set(state["model"], params)
        n = X.shape[0]
        if epochs > 0 and short_batch(n, batch_size, getattr(self.module, "MIN_ROWS", 1)):
            raise short_batch_error(batch_size, n)
        groups = state["optimizer"].param_groups
        base = [g["lr"] for g in groups]
        scheduler = self.module.make_scheduler(state["optimizer"])  # stepped once per epoch
        try:
            for epoch in range(epochs):
                order = prng.permutation(seed, epoch, n) if shuffle else np.arange(n)
                total, batches = 0.0, 0
                for start in range(0, n, batch_size):
                    idx = torch.from_numpy(order[start : start + batch_size])
                    total += self._step(state, X[idx], T[idx])
                    batches += 1
                if scheduler is not None:
                    scheduler.step()
                self._get(state["model"], params)
                yield epoch, total / batches
        finally:
            for group, lr in zip(groups, base, strict=True):  # the base rate, as the others
                group["lr"] = lr
            self._get(state["model"], params)

    def split_validation(self, X, T, fraction: float, shuffle: bool = True, seed=None):
        """The NumPy module's split: the same held-out rows."""
        return self._numpy.split_validation(X, T, fraction, shuffle, seed)

    def validation_loss(self, params: dict, X, T) -> float:
        """The evaluation-mode loss, as the NumPy module computes it."""
        return self._numpy.validation_loss(params, X, T)

    def train_validated(self, params, X, T, X_val, T_val, epochs, batch_size, shuffle=True,
                        seed=None, state=None, progress=None, first_epoch=0, patience=None,
                        min_delta=0.0):  # fmt: skip
        """The NumPy module's train_validated (from epoch 0: no resuming here)."""
        if first_epoch:
            raise ValueError("train_validated: the torch target starts at epoch 0")
        run = self._epochs(params, X, T, epochs, batch_size, shuffle, seed, state)
        return keep_best(run, params, lambda: self.validation_loss(params, X_val, T_val), epochs,
                         patience, min_delta, progress)  # fmt: skip

    def accuracy(self, params: dict, X, T) -> float | None:
        """Fraction of samples classified right (classifiers only), else None."""
        return self._numpy.accuracy(params, X, T)

    def save(self, params: dict, path) -> None:
        """Write the weights with the generated Model.save."""
        self._set(self._model, params)
        self._model.save(str(path))

    def load(self, path) -> dict:
        """Read weights of any target with the generated Model.load."""
        params = self.init_params()
        self._get(self._model.load(str(path)), params)
        return params

    def load_data(self, path) -> tuple[np.ndarray, np.ndarray]:
        """X and T from .csv, .npy or .npz, read and checked by the NumPy module (bad data:
        one error line, exit 2)."""
        return self._numpy.load_data(str(path))


def torch_module(d: Derivation, directory: str | Path | None = None) -> TorchTarget:
    """Generate the torch (and NumPy) target of ``d`` into ``directory`` (a temporary one by
    default), import them, and return the torch target behind the NumPy module's functions."""
    from .. import generate

    folder = Path(directory or tempfile.mkdtemp(prefix="symbackprop-torch-"))
    generate(d, "numpy", folder, force=True)
    generate(d, "torch", folder, force=True)
    name = d.spec.name
    return TorchTarget(load_torch(folder / f"{name}_torch.py"), load_numpy(folder / f"{name}.py"))


__all__ = ["TorchTarget", "load_torch", "torch_module"]
