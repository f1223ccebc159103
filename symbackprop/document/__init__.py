"""Documents: the derivation's sections and their layouts (text, Markdown, LaTeX, JSON)."""
