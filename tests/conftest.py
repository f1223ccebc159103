"""Shared fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def c_build_cache(tmp_path_factory):
    """A fresh C build cache for the test session: every network is really compiled, once per
    set of flags, and nothing from a user's ~/.cache/symbackprop is reused."""
    old = os.environ.get("SYMBACKPROP_CACHE")
    os.environ["SYMBACKPROP_CACHE"] = str(tmp_path_factory.mktemp("c-cache"))
    yield
    if old is None:
        os.environ.pop("SYMBACKPROP_CACHE", None)
    else:
        os.environ["SYMBACKPROP_CACHE"] = old
