# Everything runs inside .venv; `make demo` and `make test` build it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test fuzz bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first, pinned: the CPU wheel on local disk; nothing later may re-resolve it.
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[test,mlflow]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/maximus-train demo

test: $(STAMP)
	$(BIN)/python -m pytest training/tests/

# The property tests only, randomized, with 50 times their examples (HYPOTHESIS_PROFILE=fuzz,
# training/tests/hypothesis_profiles.py): 1-2 hours on a 2-core box. CI runs them
# derandomized (CI=true).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest training/tests/ -m hypothesis -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_collection.py

clean:
	rm -rf $(VENV) build *.egg-info
