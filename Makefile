# attnclf: `make train` sets everything up and trains the default model; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml
DATA ?=
RUN ?= artifacts/latest
TEXT ?= The final tennis tournament starts next week.
NPROC ?= 2
SPACE ?= configs/spaces/default.yaml
TRIALS ?= 20
ARGS ?=
SET := $(if $(DATA),--set data.path=$(DATA),)
TRAIN_DATA := $(if $(DATA),--data $(DATA),)
PYTEST_ARGS ?=

.PHONY: install data train evaluate predict serve export tune test test-fast lint bench bench-quality bench-explain bench-serve train-ddp clean

$(BIN)/attnclf: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install "torch>=2.4"
	$(BIN)/pip install -e ".[dev]"
	touch $@

install: $(BIN)/attnclf ## create .venv and install attnclf with its dev tools

data: install ## download the default dataset into data/
	$(BIN)/attnclf data download --config $(CONFIG) $(SET)

train: install ## train CONFIG (default configs/default.yaml); DATA=file.csv (.tsv, .jsonl, .parquet) to use another file
	$(if $(DATA),,$(BIN)/attnclf data download --config $(CONFIG))
	$(BIN)/attnclf train --config $(CONFIG) $(TRAIN_DATA) $(ARGS)

train-ddp: install ## train with torchrun on NPROC local processes
	$(BIN)/torchrun --standalone --nproc_per_node=$(NPROC) -m attnclf train --config $(CONFIG) $(TRAIN_DATA) $(ARGS)

tune: install ## tune CONFIG over SPACE (TRIALS trials) -> artifacts/tune/<config>/best.yaml
	$(BIN)/attnclf tune --config $(CONFIG) --space $(SPACE) --trials $(TRIALS) $(SET) $(ARGS)

evaluate: install ## score RUN on DATA (a labelled CSV, TSV, JSON Lines or Parquet file)
	$(BIN)/attnclf evaluate --run $(RUN) --data $(or $(DATA),data/news.csv) $(ARGS)

predict: install ## label TEXT with RUN
	$(BIN)/attnclf predict --run $(RUN) --explain "$(TEXT)" $(ARGS)

serve: install ## serve RUN over HTTP on 127.0.0.1:8000 (ARGS="--port 9000 --backend onnx")
	$(BIN)/attnclf serve --run $(RUN) $(ARGS)

export: install ## export RUN as ONNX into RUN/model.onnx, checked against torch
	$(BIN)/attnclf export --run $(RUN) $(ARGS)

test: install ## run the test suite
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install ## the test suite without the slow training tests
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check attnclf tests benchmarks
	$(BIN)/ruff format --check attnclf tests benchmarks

bench: install ## speed benchmarks -> benchmarks/results/speed.{json,md}
	$(BIN)/python benchmarks/speed.py $(if $(DATA),--data $(DATA),)

bench-quality: install ## quality benchmark against linear baselines, every regime (AG News, SST-2, TREC; DATA: the AG News pool; ARGS e.g. --regimes sst2,trec) -> benchmarks/results/quality.{json,md}
	$(BIN)/python benchmarks/quality.py --threads 1 $(if $(DATA),--pool $(DATA),) $(ARGS)

bench-explain: install ## explanation faithfulness (trains default on DATA, else the shared 30k file) -> benchmarks/results/explain.{json,md}
	$(BIN)/python benchmarks/explain.py $(if $(DATA),--data $(DATA),) $(ARGS)
bench-serve: install ## serving benchmark -> benchmarks/results/serve.{json,md}
	$(BIN)/python benchmarks/serve.py $(if $(DATA),--data $(DATA),) $(if $(filter-out artifacts/latest,$(RUN)),--run $(RUN),)

clean: ## remove the virtual environment and caches (keeps data/ and artifacts/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
