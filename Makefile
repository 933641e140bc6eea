# ZooServe: `make serve` brings the service up with trained models, `make test` proves every step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= all
PROFILE ?= full
PORT ?= 3000
EXTRAS ?= train,test,load,build

export DATA_DIR ?= data
export BENTOML_DO_NOT_TRACK := True
export PYTHONUNBUFFERED := 1
LINTED := serving training bench loadtests tests

.PHONY: setup train serve test lint docs loadtest soak starvation saturation swaps jobs bench gpu-check profile robustness build containerize clean

comma := ,
INSTALLED := $(VENV)/.installed-$(subst $(comma),+,$(EXTRAS))

setup: $(INSTALLED)

# Re-installs only when the pinned dependencies or the chosen extras change.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

train: setup
	$(BIN)/python -m training $(MODEL) --profile $(PROFILE)

# A first run says what it does and how long each step takes (README, "First run"): it installs
# only what training and serving need, then serves at once while the missing models train (quick
# profile, fastest first); each model answers as soon as it is trained.
serve:
	@echo "make serve [1/2]: installing the pinned dependencies into $(VENV) (about 1.5 min from a warm pip cache, longer to download 3 GB; nothing the next time)"
	@$(MAKE) --no-print-directory setup EXTRAS=train
	@echo "make serve [2/2]: serving at http://localhost:$(PORT) while the models missing from $${ZOOSERVE_MODELS_DIR:-models} train (quick profile); GET /models shows their progress, /readyz answers 200 once all are loaded"
	$(BIN)/python -m training.first_run --host 0.0.0.0 --port $(PORT)

test: setup
	$(BIN)/python -m pytest

# Pairs of places sharing 4 or more similar lines (pylint's duplicate-code); the suite holds it at none.
lint: setup
	$(BIN)/python -m pylint $(LINTED)

# The documentation site (docs/, mkdocs.yml) -> site/; --strict fails on a broken link or page.
docs: setup
	$(BIN)/mkdocs build --strict

# Locust against the server on loopback (or URL=...); FAMILY=DigitsUser runs one family alone.
loadtest: setup
	$(BIN)/python -m loadtests.run $(if $(URL),--url $(URL)) $(if $(FAMILY),--family $(FAMILY))

# Mixed traffic over every endpoint family, RSS of each server process sampled -> reports/soak/.
DURATION ?= 10m
RATE ?= 50
soak: setup
	$(BIN)/python -m loadtests.soak --duration $(DURATION) --rate $(RATE) $(if $(URL),--url $(URL))

# p50/p99 of the fast endpoints while 64 clients stall their bodies or ask for long generations.
starvation: setup
	$(BIN)/python -m loadtests.starvation

# Offered load stepped up until p99 passes 100 ms (FAMILY=DigitsUser for another endpoint).
saturation: setup
	$(BIN)/python -m loadtests.saturation $(if $(URL),--url $(URL)) $(if $(FAMILY),--family $(FAMILY))

# Generation jobs: a disconnected submitter fetching later, a cancel, a flood of 200 -> reports/jobs/.
jobs: setup
	$(BIN)/python -m loadtests.jobs

# 20 model-version swaps through the management API under 100 req/s of mixed traffic -> reports/swaps/.
swaps: setup
	$(BIN)/python -m loadtests.swaps

# Side-by-side benchmarks of the served models -> reports/bench.json and reports/bench.md.
bench: setup
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY))

# Where a request's CPU goes in the API worker, by layer (py-spy under wrk) -> reports/profile-*.json.
# The GPU path in one process (parity of every graph, /v2 throughput, diffusion, GPU memory) ->
# reports/gpu.json; on a machine without a GPU it says so and exits 0.
gpu-check: setup
	$(BIN)/python -m bench.gpu_check

profile: setup
	$(BIN)/python -m bench.profile_worker $(if $(ENDPOINT),--path $(ENDPOINT))

# Accuracy of /digits/classify on pictures as people send them (bench/digit_pictures.py) -> reports/robustness/.
robustness: setup
	$(BIN)/python -m bench.robustness

# The course notes' PyTorch exercises (training/labs/) -> reports/labs/<name>/{plot.png,figures.json}.
labs: setup
	$(BIN)/python -m training.labs $(NAMES)

# A Bento: serving code, models/ and the serving dependencies only (see bentofile.yaml).
build: setup
	$(BIN)/bentoml build .

containerize: build
	@docker info > /dev/null 2>&1 || { echo "error: no Docker engine answers here (docker info failed); run 'make containerize' on a machine with Docker, or ship the Bento with 'bentoml export'" >&2; exit 2; }
	$(BIN)/bentoml containerize zooserve:latest

clean:
	rm -rf $(VENV) checkpoints .pytest_cache
