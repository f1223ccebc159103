"""Shared fixtures."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

import symbackprop
from symbackprop.codegen.c import c_module
from symbackprop.codegen.c.build import build_program
from symbackprop.codegen.numpy import numpy_module

ROOT = Path(__file__).resolve().parents[1]
IRIS_GENERATED = ROOT / "generated/iris_softmax"


@pytest.fixture(scope="session", autouse=True)
def c_build_cache(tmp_path_factory):
    """A fresh C build cache for the test session: every network is really compiled, once per
    set of flags, and nothing from a user's ~/.cache/symbackprop is reused.

    The libraries the tests build through symbackprop's own build are compiled at -O2 (CFLAGS,
    after the default -O3; a CFLAGS of the caller's wins): gcc takes a third to a half of the
    time, and the numbers are the same, since the build keeps IEEE semantics at every level
    (-ffp-contract=off, no -ffast-math: no contraction, no reassociation) and runtime dispatch
    works alike. The benchmarks, the Makefile and `symbackprop` itself build at -O3."""
    saved = {k: os.environ.get(k) for k in ("SYMBACKPROP_CACHE", "CFLAGS")}
    os.environ["SYMBACKPROP_CACHE"] = str(tmp_path_factory.mktemp("c-cache"))
    os.environ.setdefault("CFLAGS", "-O2")
    yield
    for key, old in saved.items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


@pytest.fixture(scope="session", params=["numpy", "c"])
def build(request, tmp_path_factory):
    """build(spec dict) -> the generated NumPy module, or the C library behind the same
    functions (load_c), derived and generated once per spec: a test using it runs on both
    targets."""
    cache: dict[str, object] = {}
    make = numpy_module if request.param == "numpy" else c_module

    def _build(data: dict):
        key = json.dumps(data, sort_keys=True)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"{request.param}-build")
            cache[key] = make(symbackprop.derive(data), folder)
        return cache[key]

    return _build


@pytest.fixture(scope="session")
def iris_programs() -> dict:
    """The golden iris training programs: the NumPy module, and the C program when a compiler
    is there (CI has one: there its absence is a failure, not a skip)."""
    found = {"numpy": [sys.executable, IRIS_GENERATED / "iris_softmax.py"]}
    if shutil.which(os.environ.get("CC", "cc")) or os.environ.get("CI"):
        found["c"] = [build_program(IRIS_GENERATED)]
    return found
