"""The command line: ``symbackprop derive|demo ...`` (exit 0 ok, 1 check failed, 2 bad input)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

from . import __version__
from .chain_rule import derive
from .errors import SpecError
from .samples import load_samples
from .spec import load_spec

FORMATS = ("text", "latex", "markdown", "json")


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
    sub.add_parser("demo", help="derive the built-in Mazur example, with numbers")
    return p


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half a file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _output(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    target = Path(output)
    if target.is_dir():
        raise SpecError("-o", "is a directory", output)
    if not target.parent.exists():
        raise SpecError("-o", "no such directory", str(target.parent))
    write_atomic(target, text if text.endswith("\n") else text + "\n")


def cmd_derive(args) -> int:
    spec = load_spec(args.spec)
    samples = load_samples(args.at, spec) if args.at else None
    d = derive(spec)
    ev = d.at(samples) if samples is not None else None
    _output(d.render(args.format, args.mode, ev), args.output)
    return 0


def cmd_demo(args) -> int:
    data = resources.files("symbackprop") / "data"
    with (
        resources.as_file(data / "mazur.yaml") as spec_path,
        resources.as_file(data / "mazur_sample.yaml") as sample_path,
    ):
        spec = load_spec(spec_path)
        d = derive(spec)
        ev = d.at(load_samples(sample_path, spec))
        print(d.render("text", "scalar", ev))
    print("This was Matt Mazur's 'A Step by Step Backpropagation Example', derived symbolically.")
    print(
        "Try: symbackprop derive examples/mazur.yaml --at examples/mazur_sample.yaml "
        "--format latex -o mazur.tex"
    )
    return 0


COMMANDS = {"derive": cmd_derive, "demo": cmd_demo}


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
