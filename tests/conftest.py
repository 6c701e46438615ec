"""Fixtures shared by every test folder: the real SmolLM2 tokenizer, converted once per session."""

from __future__ import annotations

import pytest

from chord_env.tokenizer import load_tokenizer


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("chord-env-cache") / "smollm2-tokenizer"


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_cache):
    return load_tokenizer(smollm2_cache)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer):
    """The `tiny-random` model (SmolLM2's tokenizer and Llama layout, hidden 128), made once."""
    from chord_env.models import prepare_model

    return prepare_model("tiny-random", tmp_path_factory.mktemp("models") / "tiny-random")
