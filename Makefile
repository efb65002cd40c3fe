# The two set-up commands of README.md. Each creates .venv if absent and installs
# only what is missing (pip skips satisfied requirements; the stamp file skips the
# whole install when pyproject.toml has not changed since the last one).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
EXTRAS  := dev
STAMP   := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo test lint bench clean-venv

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	# torch first, pinned: 2.13.0 is the CPU build on this machine's disk; an
	# unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m qfl_gym.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_channel_power.py
