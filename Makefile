# Two commands on a fresh machine: `make run` (the full default run) and `make test` (what CI runs:
# lint, mypy, every test). `make test-fast` is the edit loop: every test but the slow ones (those
# that start `kedro run`, a notebook kernel or DDP processes). All create or reuse .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export MPLBACKEND := Agg

.PHONY: install run autzen test test-fast test-slow lint viz mlflow-ui clean-data

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/kedro run

# The real Autzen scene (../shared/data/autzen). Its training starts from a model of the synthetic
# scene trained on the DSM alone, as Autzen has it (conf/autzen train.init_from; the synthetic_dsm
# environment, data/synthetic_dsm/), trained here first when it is not there yet.
SYNTHETIC_MODEL := data/synthetic_dsm/06_models/croco_model.pt
$(SYNTHETIC_MODEL): | install
	$(VENV)/bin/kedro run --env synthetic_dsm --pipelines=synthesize,ingest,preprocess,train

autzen: install $(SYNTHETIC_MODEL)
	$(VENV)/bin/kedro run --env autzen

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy src

test: lint
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

test-slow: install
	$(PY) -m pytest -q -m slow

viz: install
	$(VENV)/bin/kedro viz build

mlflow-ui: install
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

clean-data:
	find data -type f ! -name .gitkeep -delete
	find data -mindepth 2 -type d -empty -delete
