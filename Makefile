# Both targets bootstrap a local virtual environment in .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: classify demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,ref]'
	touch $(STAMP)

classify: $(STAMP)
	$(BIN)/vc4 classify sample

demo: $(STAMP)
	$(BIN)/vc4 info --backend sim
	$(BIN)/vc4 run examples/hello.qasm --qpus 12 --uniform buf:192
	$(BIN)/python examples/gpu_fft.py --sizes 8-14 --if-present

# The tests run on every core; each file stays on one worker (its module fixtures are shared).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n auto --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/asm_speed.py
	$(BIN)/python benchmarks/sim_speed.py
	$(BIN)/python benchmarks/gpu_fft_timing.py
	$(BIN)/python benchmarks/nn_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
