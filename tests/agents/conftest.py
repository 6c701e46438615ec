"""Session fixtures for the agent tests: ONE shared vLLM engine on the tiny model (tests/conftest.py
makes the model folder once).

`tiny_vllm` is the only long-lived engine (fp32, ~30 s to start on 2 CPU cores); tests that change
its weights must put the original weights back before they end (`tiny_model` holds them).
`smollm2_model_dir` converts the real SmolLM2-135M (bf16, ~20 s) for tests marked slow.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The tiny model in transformers (fp32, eval mode): the weights the shared engine starts with."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


@pytest.fixture(scope="session")
def tiny_vllm(tiny_model_dir):
    from chord_env.agents.vllm_backend import VLLMBackend

    backend = VLLMBackend(tiny_model_dir, max_model_len=1024, kv_cache_gib=0.5, seed=0)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def smollm2_model_dir(tmp_path_factory):
    from chord_env.models import prepare_model

    return prepare_model("smollm2-135m-instruct", tmp_path_factory.mktemp("models") / "smollm2", dtype="bf16")
