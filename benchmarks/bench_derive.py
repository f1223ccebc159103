"""How the cost of deriving grows with width and depth (goal: 20 x 1000 within 2x of 2 x 4).

Times Spec -> Derivation -> tensor-mode text, in one process, with every derivation cache
cleared before each run, so both nets pay for their activations' symbolic derivatives.
Prints medians and the ratio. Run: python benchmarks/bench_derive.py
"""

from __future__ import annotations

import statistics
import time

from symbackprop import parse_spec, render
from symbackprop.core import activations, losses
from symbackprop.core.chain_rule import derive


def net(depth: int, width: int, inputs: int = 4) -> dict:
    layers = [
        {"units": width, "activation": "sigmoid", "weight": {"init": "xavier_uniform"}}
        for _ in range(depth - 1)
    ]
    layers.append({"units": 3, "activation": "softmax"})
    return {
        "name": f"net_{depth}x{width}",
        "inputs": inputs,
        "layers": layers,
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adam"},
    }


def clear_caches() -> None:
    activations.derive_activation.cache_clear()
    losses.softmax_jacobian_proved.cache_clear()
    losses._softmax_ce_steps.cache_clear()


def time_derive(data: dict, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        clear_caches()
        start = time.perf_counter()
        d = derive(parse_spec(data))
        render(d, "text", "tensor")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    small = time_derive(net(2, 4))
    rows = [("2 layers x 4", small)]
    for depth, width in ((20, 1000), (5, 100), (50, 1000)):
        rows.append((f"{depth} layers x {width}", time_derive(net(depth, width))))
    print(f"{'net':<18} {'median s':>9} {'ratio':>7}")
    for name, t in rows:
        print(f"{name:<18} {t:9.3f} {t / small:7.2f}")


if __name__ == "__main__":
    main()
