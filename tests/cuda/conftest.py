"""Fixtures for the device tests: `device` runs a test on CPU and, where there is one, on CUDA; the
tokenizer comes from chord-env's cache when one is there (scripts/gpu_check.py puts a carried one there:
a GPU machine without the SmolLM2 GGUF cannot convert it)."""

from __future__ import annotations

import pytest
import torch

from chord_env.tokenizer import cache_root

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    cached = cache_root() / "smollm2-tokenizer"
    return cached if (cached / "tokenizer.json").is_file() else tmp_path_factory.mktemp("chord-env-cache") / "smollm2-tokenizer"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: the CUDA case of a device test (scripts/gpu_check.py runs `-m cuda`)")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[CUDA, pytest.mark.cuda])])
def device(request) -> torch.device:
    return torch.device(request.param)
