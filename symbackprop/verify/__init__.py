"""``verify``: hand derivations read (expressions, matrix notation, LaTeX), probed at random
points, proved by SymPy, and their mistakes explained."""

from .api import VerifyResult, add_parser, run, verify

__all__ = ["VerifyResult", "add_parser", "run", "verify"]
