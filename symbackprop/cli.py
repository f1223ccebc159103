"""The command line: ``symbackprop derive|demo ...`` (exit 0 ok, 1 check failed, 2 bad input)."""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from . import __version__
from .codegen import TARGETS, generate, lower
from .codegen.files import check_writable, write_atomic, write_files
from .codegen.schedule import lr_at
from .core.chain_rule import derive
from .core.evaluate import evaluate
from .core.layers.normalization import ONE_ROW, min_training_rows, short_batch
from .document.sections import render
from .spec.errors import SpecError
from .spec.fields import MAX_COUNT
from .spec.load import load_spec
from .spec.samples import load_samples
from .verify.api import add_parser as add_verify_parser, run as run_verify

FORMATS = ("text", "latex", "markdown", "json", "html")


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit status 2 like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="symbackprop", description="Derive neural-network gradients symbolically.")
    p.add_argument("--version", action="version", version=f"symbackprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("derive", help="print the gradient derivation of a network spec")
    d.add_argument("spec", help="network spec (YAML or JSON)")
    d.add_argument("--mode", choices=("auto", "scalar", "tensor"), default="auto")
    d.add_argument("--format", choices=FORMATS, default="text")
    d.add_argument("--at", metavar="SAMPLE", help="evaluate at one sample or a batch (YAML/JSON)")
    d.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    d.add_argument("--pdf", metavar="PDF", help="also compile the LaTeX document to PDF")
    g = sub.add_parser("generate", help="write standalone training code for a spec")
    g.add_argument("spec")
    g.add_argument("--target", choices=tuple(TARGETS), default="numpy")
    g.add_argument("-o", "--output", metavar="DIR", help="default: generated/<name>/")
    g.add_argument("--force", action="store_true", help="overwrite files symbackprop did not write")
    g.add_argument("--inference", action="store_true", help="C: <name>_infer.c/.h, no heap/stdio")
    g.add_argument("--weights", metavar="FILE", help="with --inference: the weights to build in")
    c = sub.add_parser("check", help="check generated gradients against finite differences")
    c.add_argument("spec")
    t = sub.add_parser("train", help="generate, train on data, save the weights")
    t.add_argument("spec")
    t.add_argument("--data", required=True, help=".npz (X, T or y) or .csv (features, targets)")
    t.add_argument("--target", choices=tuple(TARGETS), default="numpy")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", help="the learning rate instead of the spec's (as the programs' --lr)")
    t.add_argument("--out", metavar="WEIGHTS", help="default: <name>.weights")
    t.add_argument("--plot", metavar="PNG", help="plot the loss curve (needs matplotlib)")
    t.add_argument("--quiet", action="store_true")
    f = sub.add_parser("footprint", help="memory, code size and work of the C library")
    f.add_argument("spec")
    f.add_argument("--batch", type=int, default=1, help="rows per chunk of the workspace")
    f.add_argument("--format", choices=("text", "json"), default="text")
    f.add_argument("--arch", choices=("host", "cortex-m4"), default="host")
    lean = "built with NAME_NO_SHUFFLE, NAME_WT_COPY=0 and NAME_ONE_CHUNK"
    f.add_argument("--lean", action="store_true", help=lean)
    add_verify_parser(sub)
    demo = sub.add_parser("demo", help="derive Mazur's example, generate code, train on iris")
    demo.add_argument("-o", "--output", metavar="DIR", default="symbackprop-demo")
    return p


def _output(text: str, output: str | None) -> None:
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text, "-o")


@contextmanager
def _about(spec: str):
    """SpecErrors raised inside (a net a target or mode cannot handle) name the spec file."""
    try:
        yield
    except SpecError as exc:
        raise exc.with_file(spec) from None


def cmd_derive(args) -> int:
    spec = load_spec(args.spec)
    samples = load_samples(args.at, spec) if args.at else None
    if args.output:
        check_writable(args.output, "-o")
    if args.pdf:
        from .document.pdf import check_pdflatex

        check_pdflatex()
        check_writable(args.pdf, "--pdf")
    d = derive(spec)
    ev = evaluate(d, samples) if samples is not None else None
    with _about(args.spec):
        text = render(d, args.format, args.mode, ev)
    _output(text, args.output)
    if args.pdf:
        from .document.pdf import compile_pdf

        compile_pdf(render(d, "latex", args.mode, ev), Path(args.pdf))
        print(f"wrote {args.pdf}", file=sys.stderr)
    return 0


def cmd_generate(args) -> int:
    spec = load_spec(args.spec)
    folder = Path(args.output or Path("generated") / spec.name)
    if args.weights is not None and not args.inference:
        raise SpecError("--weights", "goes with --inference (the weights to build in)")
    target = TARGETS[args.target]
    if args.inference and target.inference is None:
        have = [t.name for t in TARGETS.values() if t.inference]
        raise SpecError("--inference", f"the {args.target} target has no inference export "
                        f"(use --target {' or '.join(have)})")  # fmt: skip
    with _about(args.spec):
        d = derive(spec)
        if args.inference:
            target.check_size(d)
            written = write_files(folder, target.inference(d, args.weights), args.force)
        else:
            written = generate(d, args.target, folder, args.force)
    for path in written:
        print(path)
    if target.summary and not args.inference:
        print(target.summary(lower(d)), file=sys.stderr)
    return 0


def cmd_footprint(args) -> int:
    from .codegen.c.footprint import footprint, render_report

    spec = load_spec(args.spec)
    with _about(args.spec):
        d = derive(spec)
        TARGETS["c"].check_size(d)
        report = footprint(lower(d), args.batch, args.arch, args.lean)
    print(render_report(report, args.format))
    return 0


def cmd_check(args) -> int:
    from .codegen.check import check, skipped, table

    spec = load_spec(args.spec)
    rows = check(spec)
    print(table(rows))
    for name, why in skipped(derive(spec)).items():
        label = name.upper() if len(name) == 1 else name  # the C target, the numpy target
        why = why.replace(f"the {label} target is", "it is", 1)
        print(f"the {label} target was not checked: {why}")
    ok = all(r.ok for r in rows)
    print("all checks passed" if ok else "CHECK FAILED")
    return 0 if ok else 1


def _check_count(value: int | None, flag: str) -> None:
    """--epochs and --batch-size take the values the spec's train section allows."""
    if value is not None and not 1 <= value <= MAX_COUNT:
        raise SpecError(flag, f"must be an integer in [1, {MAX_COUNT}], got {value}")


def _with_lr(spec, text: str):
    """``spec`` with optimizer.lr = ``text``, held to the spec's own rule for lr (what the
    generated programs' --lr checks too)."""
    import dataclasses
    import math

    from .core.optimizers import hyper_range

    r = hyper_range("eta")
    try:
        lr = float(text)
    except ValueError:
        lr = math.nan
    if not r["low"] <= lr <= r["high"]:
        raise SpecError("--lr", f"must be a finite number {r['rule']}, got {text[:40]!r}")
    return dataclasses.replace(spec, optimizer=dataclasses.replace(spec.optimizer, lr=lr))


class _Diverged(Exception):
    """An epoch ended with a mean loss or a weight that is not finite."""


def cmd_train(args) -> int:
    """Train; exit 1 when training diverges, saving the weights of the epoch before (the
    generated programs do the same, with the same message)."""
    import numpy as np

    spec = load_spec(args.spec)
    _check_count(args.epochs, "--epochs")
    _check_count(args.batch_size, "--batch-size")
    if args.lr is not None:
        spec = _with_lr(spec, args.lr)
    data = Path(args.data)
    if data.is_dir():
        raise SpecError("--data", "is a directory", args.data)
    if not os.path.exists(args.data):  # the readers refuse what cannot be read
        raise SpecError("--data", "no such file", args.data)
    out = args.out or f"{spec.name}.weights"
    check_writable(out, "--out")  # now, not after training
    if args.plot:
        check_writable(args.plot, "--plot")
    plt = _pyplot() if args.plot else None
    d = derive(spec)
    with _about(args.spec):
        TARGETS[args.target].check_size(d)
    with tempfile.TemporaryDirectory(prefix="symbackprop-train-") as tmp:
        module = TARGETS[args.target].module(d, tmp)  # loaded: tmp may go
    try:
        x, t = module.load_data(args.data)  # bad data: SpecError (C), or the generated
    except SystemExit as exc:  # NumPy program's own one-line error and exit 2
        return int(exc.code or 0)
    params = module.init_params()
    kept = {name: value.copy() for name, value in params.items()}
    epochs = args.epochs or spec.train.epochs
    batch = args.batch_size or spec.train.batch_size
    history: list[float] = []
    val_history: list[float] = []
    stop = spec.train.early_stopping
    if spec.train.validation:  # the rows the generated programs hold out
        try:
            x, t, x_val, t_val = module.split_validation(x, t, spec.train.validation,
                                                         spec.train.shuffle)  # fmt: skip
        except ValueError as exc:
            raise SpecError("train.validation", str(exc), args.data) from None
    if short_batch(len(x), batch, min_training_rows(d.spec.layers)):  # as PyTorch would refuse it
        field = "--batch-size" if args.batch_size else "train.batch_size"
        reason = f"{batch} leaves a batch of one row of {len(x)} training rows; {ONE_ROW}"
        raise SpecError(field, reason, args.data)

    def progress(epoch, total, mean_loss, val_loss=None, best=None):
        finite = all(np.isfinite(value).all() for value in params.values())
        if not (finite and np.isfinite(mean_loss)):
            why = f"loss {mean_loss:.6g}" + ("" if finite else ", weights not finite")
            raise _Diverged(epoch, why)
        history.append(mean_loss)
        if val_loss is not None:
            val_history.append(val_loss)
        for name, value in params.items():  # the weights of the last epoch that did not diverge
            kept[name][...] = value
        every = max(1, total // 20)
        if not args.quiet and (epoch % every == 0 or epoch == total - 1):
            acc = module.accuracy(params, x, t)
            extra = "" if val_loss is None else f"  val_loss {val_loss:.6g}"
            extra += "" if acc is None else f"  accuracy {acc:.4f}"
            if spec.optimizer.schedule is not None:  # the rate this epoch trained at
                extra += f"  lr {lr_at(spec.optimizer.schedule, spec.optimizer.lr, epoch):.6g}"
            if stop is not None and best is not None:
                extra += f"  best epoch {best + 1}"
            print(f"epoch {epoch + 1:>{len(str(total))}}/{total}  loss {mean_loss:.6g}{extra}")

    diverged = stopping = None
    try:
        with np.errstate(all="ignore"):  # a diverging run overflows: it is reported below
            if spec.train.validation:
                stopping = module.train_validated(
                    params, x, t, x_val, t_val, epochs, batch, spec.train.shuffle, None, None,
                    progress, 0, stop and stop.patience, stop.min_delta if stop else 0.0,
                )  # fmt: skip
            else:
                module.train(params, x, t, epochs, batch, spec.train.shuffle, None, None, progress)
    except _Diverged as exc:
        diverged = exc.args
        params = kept
    if stopping is not None and stop is not None and stopping[2] is not None and not args.quiet:
        _, _, best = stopping
        ran = f"stopped after epoch {len(history)}; " if len(history) < epochs else ""
        print(f"early stopping: {ran}kept the weights of epoch {best + 1} "
              f"(val_loss {val_history[best]:.6g})")  # fmt: skip
    _save(module, params, out, "--out")
    if diverged is None:
        print(f"saved weights to {out}")
    if plt is not None and history:
        _plot(plt, history, spec.name, args.plot, val_history)
    if diverged is not None:
        epoch, why = diverged
        weights = f"the weights of epoch {epoch}" if epoch else "the initial weights"
        message = f"training diverged at epoch {epoch + 1} ({why}); saved {weights} to {out}"
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


def _save(module, params: dict, path: str, field: str) -> None:
    """``module.save``; a SpecError naming ``path`` when it cannot be written."""
    try:
        module.save(params, path)
    except OSError as exc:
        reason = exc.strerror or str(exc).removeprefix(f"{path}: ")
        raise SpecError(field, f"cannot write: {reason}", path) from None


def _plot(plt, history: list[float], name: str, path: str, val_history=()) -> None:
    """The loss curves (mean training loss per epoch and, with train.validation, the
    validation loss) as a PNG, written as every output is."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(history) + 1), history, label="training")
    if val_history:
        ax.plot(range(1, len(val_history) + 1), val_history, label="validation")
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss")
    ax.set_yscale("log" if min([*history, *val_history]) > 0 else "linear")
    ax.set_title(f"{name}: training {'and validation ' if val_history else ''}loss")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    write_atomic(path, png.getvalue(), "--plot")
    print(f"saved the loss curve to {path}")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("--plot", "needs matplotlib: pip install 'symbackprop[plot]'") from None
    return plt


def cmd_demo(args) -> int:
    from .codegen.numpy.loader import load_numpy

    data = resources.files("symbackprop") / "data"
    with (
        resources.as_file(data / "mazur.yaml") as spec_path,
        resources.as_file(data / "mazur_sample.yaml") as sample_path,
    ):
        spec = load_spec(spec_path)
        d = derive(spec)
        ev = evaluate(d, load_samples(sample_path, spec))
        print(render(d, "text", "scalar", ev))
    print("That was Matt Mazur's 'A Step by Step Backpropagation Example', derived symbolically.")
    print()
    folder = Path(args.output)
    with (
        resources.as_file(data / "iris_softmax.yaml") as spec_path,
        resources.as_file(data / "iris.csv") as iris,
    ):
        iris_spec = load_spec(spec_path)
        iris_d = derive(iris_spec)
        written = generate(iris_d, "numpy", folder)
        module = load_numpy(folder / f"{iris_spec.name}.py")
        x, t = module.load_data(str(iris))
    params = module.init_params()
    tr = iris_spec.train
    print(
        f"Training {iris_spec.name} (4-8-3, relu, softmax, adam) on Fisher's iris flowers "
        f"({len(x)} samples, {tr.epochs} epochs, batch {tr.batch_size}) with the generated code:"
    )
    start = {k: v.copy() for k, v in params.items()}
    begin = time.perf_counter()
    history = module.train(params, x, t, tr.epochs, tr.batch_size, tr.shuffle)
    seconds = time.perf_counter() - begin
    acc = module.accuracy(params, x, t)
    weights = folder / f"{iris_spec.name}.weights"
    _save(module, params, str(weights), "-o")
    print(f"  loss {history[0]:.4f} -> {history[-1]:.4f}, training accuracy {acc:.1%}")
    written += _demo_c(iris_d, folder, start, params, x, t, seconds)
    print("Files:")
    for path in [*written, weights]:
        print(f"  {path}")
    module_path = folder / f"{iris_spec.name}.py"
    print(f"Next: python {module_path} train DATA.csv   (or: symbackprop --help)")
    print(f"  or: make -C {folder} && {folder / iris_spec.name} train DATA.csv")
    return 0


def _demo_c(d, folder: Path, start: dict, trained: dict, x, t, seconds: float) -> list:
    """The same training through the generated C (when a compiler is found): equal to NumPy."""
    from .codegen.c.loader import load_c

    print("The same network as C99 (libc and libm only), compiled with cc, from the same start:")
    written = generate(d, "c", folder)
    try:
        c = load_c(folder)
    except SpecError as exc:  # no compiler, or it failed (CompileError)
        print(f"  skipped: {exc}")
        return written
    params = {k: v.copy() for k, v in start.items()}
    tr = d.spec.train
    begin = time.perf_counter()
    history = c.train(params, x, t, tr.epochs, tr.batch_size, tr.shuffle)
    c_seconds = time.perf_counter() - begin
    differs = max(float(abs(params[k] - v).max() / abs(v).max()) for k, v in trained.items())
    print(
        f"  loss {history[-1]:.4f}, training accuracy {c.accuracy(params, x, t):.1%}, "
        f"{seconds / c_seconds:.0f}x the NumPy module's speed; weights equal to NumPy's "
        f"within {differs:.0e} relative"
    )
    return written


COMMANDS = {
    "derive": cmd_derive,
    "generate": cmd_generate,
    "check": cmd_check,
    "footprint": cmd_footprint,
    "train": cmd_train,
    "demo": cmd_demo,
    "verify": run_verify,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        print(f"error: {exc.format()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
