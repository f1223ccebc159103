"""The Jinja environment shared by every backend (templates live in the top-level templates/)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import jinja2

from .files import marker


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """StrictUndefined, trim/lstrip blocks, trailing newline kept: templates only loop and print."""
    root = resources.files("symbackprop.templates")
    loader = jinja2.FunctionLoader(lambda name: (root / name).read_text(encoding="utf-8"))
    return jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, **context) -> str:
    """``template`` rendered with ``context``, plus ``template`` and ``marker``: the ownership
    line every emitted file starts with (see files.marker)."""
    mark = marker(template, context["name"], context["digest"])
    return environment().get_template(template).render(template=template, marker=mark, **context)
