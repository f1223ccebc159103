"""One training step of the generated torch Model against the same network written with
nn.Linear and autograd, eager and compiled (torch.compile), float32.

Nets ``inputs-hidden...-classes`` with relu hidden layers, softmax, cross-entropy (mean) and SGD
(lr 0.01), both started from the Model's initial weights and stepped on the same batch (checked
to agree before timing). The reference is what a PyTorch user writes: nn.Sequential of
nn.Linear and nn.ReLU, F.cross_entropy on integer labels, torch.optim.SGD; the Model takes the
one-hot targets its spec's loss reads. A step is zero_grad, loss, backward, optimizer.step.
Compiled: torch.compile of the Model (its forward(X, T) is the loss) and of the reference's loss
function; the optimizer step stays eager in both. The variants run in interleaved rounds (the
machine is shared: every variant sees the same load); each number is the median over the rounds.

Times are the CPU time of the one thread that runs everything (time.thread_time, torch set to
one thread): on a shared machine whose cores are busy, wall time mostly measures the wait for a
core, and a second OpenMP thread makes steps 5-10x slower for both variants alike.

Run: python benchmarks/bench_torch.py [--rounds 15] [--min-time 0.2] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import symbackprop
from symbackprop.codegen import generate
from symbackprop.codegen.torch.loader import load_torch

LR = 0.01
CASES = [((64, 32, 10), 32), ((784, 256, 128, 10), 128)]


def spec(widths: tuple[int, ...]) -> dict:
    hidden = [{"units": w, "activation": "relu"} for w in widths[1:-1]]
    return {
        "name": f"bench_{'_'.join(map(str, widths))}",
        "inputs": widths[0],
        "dtype": "float32",
        "seed": 1,
        "layers": [*hidden, {"units": widths[-1], "activation": "softmax"}],
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": LR},
    }


def variants(
    widths: tuple[int, ...], batch: int, folder: Path, modes: tuple = (False, True)
) -> dict:
    """name -> a function doing one training step, for ours and the reference, eager and
    compiled; all from the same weights on the same batch."""
    generate(symbackprop.derive(spec(widths)), "torch", folder, force=True)
    module = load_torch(folder / f"bench_{'_'.join(map(str, widths))}_torch.py")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(batch, widths[0], generator=g)
    labels = torch.randint(0, widths[-1], (batch,), generator=g)
    T = F.one_hot(labels, widths[-1]).to(torch.float32)
    steps = {}
    for compiled in modes:
        model = module.Model()
        layers = []
        for i in range(1, len(widths)):
            linear = torch.nn.Linear(widths[i - 1], widths[i])
            with torch.no_grad():
                linear.weight.copy_(getattr(model, f"W{i}"))
                linear.bias.copy_(getattr(model, f"b{i}"))
            layers += [linear, torch.nn.ReLU()]
        reference = torch.nn.Sequential(*layers[:-1])

        def reference_loss(X, y, reference=reference):
            return F.cross_entropy(reference(X), y)

        ours = torch.compile(model) if compiled else model
        theirs = torch.compile(reference_loss) if compiled else reference_loss
        opt_ours = module.make_optimizer(model.parameters())
        opt_ref = torch.optim.SGD(reference.parameters(), lr=LR)

        def step_ours(ours=ours, opt=opt_ours):
            opt.zero_grad()
            loss = ours(X, T)
            loss.backward()
            opt.step()
            return loss

        def step_ref(theirs=theirs, opt=opt_ref):
            opt.zero_grad()
            loss = theirs(X, labels)
            loss.backward()
            opt.step()
            return loss

        if not compiled:
            steps["derived functions, no custom op"] = direct_step(module, model, X, T)
            steps["Model, torch's custom_op kernel"] = plain_step(module, model, X, T)
        mode = "compiled" if compiled else "eager"
        a, b = step_ours().item(), step_ref().item()  # also compiles
        if abs(a - b) > 1e-5 * abs(b):
            raise AssertionError(f"{mode}: the losses differ: {a} vs {b}")
        steps[f"nn.Linear + autograd, {mode}"] = step_ref
        steps[f"generated Model, {mode}"] = step_ours
    return steps


class _Ctx:
    """The parts of autograd's ctx that the generated setup and backward functions use."""

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def set_materialize_grads(self, value):
        pass

    def mark_non_differentiable(self, *tensors):
        pass


def direct_step(module, model, X, T):
    """A step that calls the generated loss and backward functions directly, without the
    custom operator (dispatcher, autograd.Function wrapper) around them: what the derived
    formulas cost by themselves. A diagnosis, not a way to train (it bypasses autograd)."""
    params = [getattr(model, name) for name in module.PARAM_SHAPES]
    optimizer = module.make_optimizer(params)
    one = torch.ones((), dtype=X.dtype)

    def step():
        optimizer.zero_grad()
        with torch.no_grad():
            out = module._loss(X, T, *params)
            ctx = _Ctx()
            ctx.needs_input_grad = (False, False, *(p.requires_grad for p in params))
            module._loss_setup(ctx, (X, T, *params), out)
            grads = module._loss_backward(ctx, one, *[None] * (len(out) - 1))
        for p, g in zip(params, grads[2:], strict=True):
            p.grad = g
        optimizer.step()
        return out[0]

    return step


def plain_step(module, model, X, T):
    """A step through a torch.library.custom_op of the module's own forward, setup_context,
    backward and fake (what the Model's ops were before runtime.derived_op): torch's autograd
    kernel for custom ops, against the Model's leaner one, on a copy of the weights."""
    plain = torch.library.custom_op(
        f"bench_plain::{module.loss_op._name}", module._loss, mutates_args=()
    )
    plain.register_fake(module._loss_fake)
    plain.register_autograd(module._loss_backward, setup_context=module._loss_setup)
    params = [
        getattr(model, name).detach().clone().requires_grad_() for name in module.PARAM_SHAPES
    ]
    optimizer = module.make_optimizer(params)

    def step():
        optimizer.zero_grad()
        loss = plain(X, T, *params)[0]
        loss.backward()
        optimizer.step()
        return loss

    return step


def timed(step, min_time: float) -> float:
    """CPU seconds per call of ``step`` (this thread's, time.thread_time): calls repeated for at
    least ``min_time``."""
    n, start = 0, time.thread_time()
    while True:
        step()
        n += 1
        elapsed = time.thread_time() - start
        if elapsed >= min_time:
            return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.min_time = 3, 0.05
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, "
          f"median of {args.rounds} interleaved rounds, load average "
          f"{os.getloadavg()[0]:.2f} (1 min)")  # fmt: skip
    print(f"{'net / batch':<22} {'variant':<33} {'median us':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="bench-torch-") as tmp:
        for widths, batch in CASES:
            steps = variants(widths, batch, Path(tmp))
            for step in steps.values():  # warm up
                timed(step, args.min_time)
            samples = {name: [] for name in steps}
            for _ in range(args.rounds):
                for name, step in steps.items():
                    samples[name].append(timed(step, args.min_time))
            medians = {name: statistics.median(v) for name, v in samples.items()}
            label = f"{'-'.join(map(str, widths))} / b{batch}"
            print(f"load average after {label}: {os.getloadavg()[0]:.2f}")
            for name, seconds in medians.items():
                mode = "compiled" if name.endswith("compiled") else "eager"
                ratio = seconds / medians[f"nn.Linear + autograd, {mode}"]
                print(f"{label:<22} {name:<33} {seconds * 1e6:>10.1f} {ratio:>6.2f}")


if __name__ == "__main__":
    main()
