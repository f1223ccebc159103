# symbackprop developer tasks. `make test` is the README's test command.
PY ?= python3
EXAMPLES := $(filter-out %_sample.yaml %_samples.yaml,$(wildcard examples/*.yaml))
TARGETS := $(shell $(PY) -c 'from symbackprop.codegen import TARGETS; print(*TARGETS)')

.PHONY: test lint regen bench docs
test:
	$(PY) -m pip install -q -e '.[test]' && $(PY) -m pytest -q -n auto

lint:
	ruff check . && ruff format --check .

# Rewrite generated/ from examples/ (golden files), then show what changed.
regen: docs
	@for spec in $(EXAMPLES); do name=$$(basename $$spec .yaml); \
	  for target in $(TARGETS); do \
	    $(PY) -m symbackprop.cli generate $$spec --target $$target -o generated/$$name >/dev/null || exit 1; \
	  done; done
	@git status --short generated/ ; git diff --stat generated/

bench:
	$(PY) benchmarks/bench_derive.py

# The Mazur worked example as a PDF and a PNG of its first page, and as an HTML page and its
# screenshot in Chromium, for the README; the graph
# examples' derivations with their worked example, as Markdown.
DOC_EXAMPLES := residual_mlp two_branch
docs:
	$(PY) -m symbackprop.cli derive examples/mazur.yaml --at examples/mazur_sample.yaml \
	  --format latex -o docs/mazur.tex --pdf docs/mazur.pdf
	pdftoppm -png -r 80 -f 1 -l 1 -singlefile docs/mazur.pdf docs/mazur
	$(PY) -m symbackprop.cli derive examples/mazur.yaml --at examples/mazur_sample.yaml \
	  --format html -o docs/mazur.html
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=900,1300 \
	  --screenshot=docs/mazur_html.png file://$(CURDIR)/docs/mazur.html 2>/dev/null
	@for name in $(DOC_EXAMPLES); do \
	  $(PY) -m symbackprop.cli derive examples/$$name.yaml --at examples/$${name}_sample.yaml \
	    --format markdown -o docs/$$name.md || exit 1; done
	$(PY) -m symbackprop.cli derive examples/normalization/normalized_mlp.yaml \
	  --at examples/normalization/normalized_mlp_sample.yaml --format markdown \
	  -o docs/normalized_mlp.md
