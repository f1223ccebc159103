"""SymPy printer subclasses: derivation LaTeX and text, NumPy code, C code."""
