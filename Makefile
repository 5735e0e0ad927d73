# sockcli developer entry points. Every target builds its own virtual environment in .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv demo test lint unit completions defaults bench fuzz clean

help:
	@echo "make demo   - create $(VENV), run a hub, a listener and the wallpaper pipeline example with the CLI"
	@echo "make test   - create $(VENV), install sockcli with its test extras, lint, type-check, run the suite"
	@echo "make lint   - ruff and mypy (strict) only"
	@echo "make bench  - benchmarks against baselines run alongside (BENCH_ARGS=--quick: smoke run)"
	@echo "make fuzz   - fuzz the codec and the hub's handshake with atheris, FUZZ_SECONDS (30) each"
	@echo "make completions - regenerate completions/ (bash, zsh, fish) from click's shell completion"
	@echo "make defaults - regenerate sockcli/config/defaults.py (the validated packaged settings)"
	@echo "make clean  - remove $(VENV) and build artefacts"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("sockcli needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The CLI as a user runs it: a hub, a listener and the example pipeline, in a private
# XDG_RUNTIME_DIR that is removed afterwards (examples/demo.sh).
demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash examples/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check sockcli tests
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint unit

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# The scripts are click's own: each asks the installed sockcli for candidates at completion time
# (subcommands, options, choices, and the names of the running hubs). tests/test_completions.py
# fails when they differ from what click generates now.
completions: $(STAMP)
	mkdir -p completions
	_SOCKCLI_COMPLETE=bash_source $(BIN)/sockcli > completions/sockcli.bash.tmp
	_SOCKCLI_COMPLETE=zsh_source $(BIN)/sockcli > completions/_sockcli.tmp
	_SOCKCLI_COMPLETE=fish_source $(BIN)/sockcli > completions/sockcli.fish.tmp
	mv completions/sockcli.bash.tmp completions/sockcli.bash
	mv completions/_sockcli.tmp completions/_sockcli
	mv completions/sockcli.fish.tmp completions/sockcli.fish

# The validated packaged settings, for a first run without pydantic (sockcli/config/defaults.py);
# tests/test_settings_defaults.py fails when the module is out of date.
defaults: $(STAMP)
	$(BIN)/python tools/settings_defaults.py

# Coverage-guided fuzzing (atheris, installed into the venv when missing) of fuzz/fuzz_*.py, for
# FUZZ_SECONDS each. The corpora grow in .fuzz/<target>/ and a crash is written to
# .fuzz/<target>-crash-*; replay one with `$(BIN)/python fuzz/fuzz_<target>.py --replay FILE`.
# Without atheris (no wheel for this platform) the targets replay their seeds instead.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= codec handshake

fuzz: $(STAMP)
	$(BIN)/python -c 'import atheris' 2>/dev/null || $(BIN)/python -m pip install --quiet atheris \
		|| echo "atheris could not be installed: the fuzz targets will only replay their seeds"
	mkdir -p .fuzz
	for target in $(FUZZ_TARGETS); do \
		rm -rf .fuzz/run; \
		FUZZ_RUN_DIR="$(CURDIR)/.fuzz/run" $(BIN)/python fuzz/fuzz_$$target.py \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=.fuzz/$$target- .fuzz/$$target || exit 1; \
	done; rm -rf .fuzz/run

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
