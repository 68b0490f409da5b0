# Both targets bootstrap a local virtual environment in .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vc4 asm examples/hello.qasm --format hex
	$(BIN)/vc4 asm examples/hello.qasm -o .venv/hello.bin
	$(BIN)/vc4 disasm .venv/hello.bin
	$(BIN)/vc4 check .venv/hello.bin

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/asm_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
