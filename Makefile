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
QUALITY_REGIMES ?= sst2,trec,titles-2000,titles-7000,titles-all,titles-10k-file
QUALITY_SYSTEMS ?= attnclf default,ablation: the default before,ablation: the fixed,ablation: no temperature,ablation: without the wide path,tfidf,naive,nbsvm,fasttext

.PHONY: install data train evaluate predict serve export tune test test-fast lint bench bench-quality bench-explain bench-serve train-ddp docs results clean

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

bench-quality: install ## the quality record: the default, its ablations and four peers on SST-2, TREC and AG News titles (DATA: the AG News pool; ARGS e.g. --regimes sst2,trec) -> benchmarks/results/quality.{json,md}
	$(BIN)/python benchmarks/quality.py --seeds 3 --threads 2 --no-vectors --regimes $(QUALITY_REGIMES) --only '$(QUALITY_SYSTEMS)' $(if $(DATA),--pool $(DATA),) $(ARGS)

bench-explain: install ## explanation faithfulness (trains default on DATA, else the shared 30k file) -> benchmarks/results/explain.{json,md}
	$(BIN)/python benchmarks/explain.py $(if $(DATA),--data $(DATA),) $(ARGS)
bench-serve: install ## serving benchmark against the bare FastAPI stack, ~3 min -> benchmarks/results/serve.{json,md}; its load generator is wrk (apt-get install wrk, brew install wrk): without it the figures are client-bound
	@command -v wrk >/dev/null || echo "wrk not found: apt-get install wrk (or brew install wrk); falling back to a client-bound httpx client"
	$(BIN)/python benchmarks/serve.py $(if $(DATA),--data $(DATA),) $(if $(filter-out artifacts/latest,$(RUN)),--run $(RUN),)

results: install ## rewrite the generated tables of README.md and docs/ from benchmarks/results/*.json
	$(BIN)/python benchmarks/results.py

docs: install ## build the documentation site (MkDocs + Material) from docs/ into site/
	$(BIN)/mkdocs build --strict

clean: ## remove the virtual environment and caches (keeps data/ and artifacts/)
	rm -rf $(VENV) .pytest_cache .ruff_cache site
