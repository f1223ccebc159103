"""Write sine.csv: next-value prediction on a noisy sine (the sine_rnn example's data).

Each row is a window of 12 noisy samples of sin(0.3 k + phase) (the sequence [T = 12, F = 1],
flattened) followed by the next clean value, the target. 256 windows, a fixed seed: running
this again writes the same file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STEPS, ROWS, NOISE = 12, 256, 0.05


def windows(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, ROWS)[:, None]
    k = np.arange(STEPS + 1)[None, :]
    clean = np.sin(0.3 * k + phase)
    x = clean[:, :STEPS] + NOISE * rng.normal(size=(ROWS, STEPS))
    return np.hstack([x, clean[:, STEPS:]])


if __name__ == "__main__":
    path = Path(__file__).with_name("sine.csv")
    np.savetxt(path, windows(), delimiter=",", fmt="%.6f")
    print(f"wrote {path}")
