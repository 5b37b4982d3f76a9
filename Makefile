# sightline — developer entry points.  `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-dev
RUNTIME := $(VENV)/.installed-runtime
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON ?= $(abspath $(BIN)/python)

.PHONY: demo test lint install bench eval eval-real reliability clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# what sightline needs to run (make demo)
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

# plus what the tests and benchmarks need (make test)
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP) $(RUNTIME)

install: $(STAMP)

demo: $(RUNTIME)
	$(BIN)/sightline demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=600 tests

# style everywhere; types in the modules that type-check (the list grows as modules are cleaned)
TYPED := sightline/core sightline/findings sightline/assess sightline/report sightline/watch \
	sightline/engines sightline/pipeline.py sightline/suppress.py sightline/config.py sightline/net.py \
	sightline/detect/behaviours.py sightline/detect/pivot.py sightline/detect/sql.py
lint: $(STAMP)
	$(BIN)/ruff check sightline tests bench
	$(BIN)/ruff format --check sightline tests bench
	$(BIN)/mypy --follow-imports=silent $(TYPED)

bench: $(STAMP)
	$(BIN)/python -m bench.run

eval: $(STAMP)
	$(BIN)/python -m bench.eval

# sightline's verdicts on real public labelled captures (bench/real; fetches the data if needed)
eval-real: $(RUNTIME)
	$(BIN)/python -m bench.real.run $(EVAL_REAL_ARGS)

reliability: $(STAMP)
	$(BIN)/python -m bench.reliability

clean:
	rm -rf demo-out sightline-data .pytest_cache
