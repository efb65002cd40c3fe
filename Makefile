# The two set-up commands of README.md (`make demo`, `make test`). Each creates .venv
# if absent and installs only what is missing: a stamp file per extras set skips the
# install entirely when pyproject.toml has not changed since the last one, and pip
# itself skips requirements that are already satisfied.
PY          ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
RUN_EXTRAS  := dev
TEST_EXTRAS := dev,multiagent,rllib,docs,interop
DOCS_EXTRAS := docs
PYTEST_ARGS ?= -n 2 -q
# Material for MkDocs prints a multi-line notice on every build otherwise
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo quick short-demo test lint format docs bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: 2.13.0 is the CPU build on this machine's disk; an unpinned
# torch would pull a multi-GB CUDA build.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[$*]"
	touch $@

# The main job: the case study on QFL-v0 `case-study-full` (50 devices, 30 rounds, full
# participation: the reference study's setting), 10 paired seeds, agents in 2 processes
# -> results/<timestamp>/ (mostly QAOA's decisions at K = 50; docs/case-study.md; add
# `--participation full,deadline` for the deadline model too, about twice the time)
demo: $(VENV)/.installed-$(RUN_EXTRAS)
	$(BIN)/qfl-gym case-study

# The same job on the small preset (8 devices, 5 seeds): a smoke run of every agent.
quick: $(VENV)/.installed-$(RUN_EXTRAS)
	$(BIN)/qfl-gym case-study --quick

# A few heuristics on ChannelPower-v0, printed as a table (seconds).
short-demo: $(VENV)/.installed-$(RUN_EXTRAS)
	$(BIN)/python -m training_scripts.demo

# Lint, format check and the docs build first (seconds), then the whole suite; every
# step runs and the target fails if any did (pytest collecting no tests is a failure).
test: $(VENV)/.installed-$(TEST_EXTRAS)
	@fail=""; \
	$(BIN)/ruff check . || fail="$$fail ruff-check"; \
	$(BIN)/ruff format --check . || fail="$$fail ruff-format"; \
	$(BIN)/mkdocs build --strict --quiet || fail="$$fail docs"; \
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; fail="$$fail pytest"; \
	elif [ $$rc -ne 0 ]; then fail="$$fail pytest"; fi; \
	if [ -n "$$fail" ]; then echo "make test failed:$$fail"; exit 1; fi

lint: $(VENV)/.installed-$(RUN_EXTRAS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Rewrites files: run it on a tree nobody else is editing.
format: $(VENV)/.installed-$(RUN_EXTRAS)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The documentation site (docstrings + docs/) into site/, warnings as errors.
docs: $(VENV)/.installed-$(DOCS_EXTRAS)
	$(BIN)/mkdocs build --strict

bench: $(VENV)/.installed-$(RUN_EXTRAS)
	$(BIN)/python benchmarks/bench_channel_power.py
