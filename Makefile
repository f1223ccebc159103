# symbackprop developer tasks. `make test` is the README's test command.
PY ?= python3
EXAMPLES := $(filter-out %_sample.yaml %_samples.yaml,$(wildcard examples/*.yaml))
TARGETS := numpy

.PHONY: test lint regen bench
test:
	$(PY) -m pip install -q -e '.[test]' && $(PY) -m pytest -q

lint:
	ruff check . && ruff format --check .

# Rewrite generated/ from examples/ (golden files), then show what changed.
regen:
	@for spec in $(EXAMPLES); do name=$$(basename $$spec .yaml); \
	  for target in $(TARGETS); do \
	    $(PY) -m symbackprop.cli generate $$spec --target $$target -o generated/$$name >/dev/null || exit 1; \
	  done; done
	@git status --short generated/ ; git diff --stat generated/

bench:
	$(PY) benchmarks/bench_derive.py
