"""train.validation and train.early_stopping for the C library loaded in Python: the NumPy
module's split_validation and train_validated (symbackprop/codegen/numpy/runtime.py), over the
library's own split (<name>_validation_split) and train_from, so that ``symbackprop train
--target c`` keeps the rows, the epochs and the weights the generated programs keep."""

from __future__ import annotations

import ctypes

import numpy as np

from ..numpy.runtime import keep_best


class ValidationMixin:
    """split_validation and train_validated for CModule (which supplies the rest)."""

    def validation_loss(self, params: dict, X, T) -> float:
        """The loss of a batch in evaluation mode (running statistics, no dropout), as the
        NumPy module's validation_loss: the library's <name>_eval_loss, which is generated
        where the modes differ (elsewhere it is ``loss``)."""
        if not hasattr(self, "_eval_loss"):
            return self.loss(params, X, T)
        X, T, n = self._rows(X, T)
        with self._lock:
            E = self._eval_loss(self._pack(params), self._ptr(X), self._ptr(T), n, self._ws_ptr())
        return float(E)

    def split_validation(self, X, T, fraction: float, shuffle: bool = True, seed=None):
        """(X_train, T_train, X_val, T_val), the rows the C program splits."""
        n = len(X)
        seed = (self.SEED if seed is None else seed) % 2**64
        order = np.zeros(max(n, 1), dtype=np.int64)
        assert ctypes.sizeof(ctypes.c_long) == 8, "long is 64 bits on the platforms built for"
        n_train = self._validation_split(n, fraction, int(bool(shuffle)), seed, order.ctypes.data)
        if not 1 <= n_train < n:
            raise ValueError(f"validation {fraction:g} of {n} rows leaves no rows to "
                             f"{'train on' if n_train < 1 else 'validate on'}")  # fmt: skip
        fit, held = order[:n_train], order[n_train:n]
        X, T = np.asarray(X), np.asarray(T)
        return X[fit], T[fit], X[held], T[held]

    def train_validated(self, params, X, T, X_val, T_val, epochs, batch_size, shuffle=True,
                        seed=None, state=None, progress=None, first_epoch=0, patience=None,
                        min_delta=0.0):  # fmt: skip
        """The NumPy module's train_validated: epoch by epoch, the validation loss after each,
        Keras' EarlyStopping(restore_best_weights=True) rule with ``patience``."""
        state = self.init_state(params) if state is None else state
        run = (
            (epoch, self.train(params, X, T, 1, batch_size, shuffle, seed, state, None, epoch)[-1])
            for epoch in range(first_epoch, first_epoch + epochs)
        )
        return keep_best(run, params, lambda: self.validation_loss(params, X_val, T_val),
                         first_epoch + epochs, patience, min_delta, progress)  # fmt: skip


__all__ = ["ValidationMixin"]
