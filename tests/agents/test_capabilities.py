"""Backends declare what they can do (`Capabilities`), one registry names them, and the code that
drives them (trainer, rollout collection, evaluation) asks the declarations, never a backend's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chord_env.agents.backend import BACKENDS, Capabilities, backend_class, capabilities, register_backend, trainable_backends

ROOT = Path(__file__).resolve().parents[2]


def test_each_backend_declares_its_capabilities():
    assert capabilities("hf") == Capabilities(shares_weights=True, syncs_weights=True, per_request_seeds=True, checks_parity=False)
    assert capabilities("vllm") == Capabilities(shares_weights=False, syncs_weights=True, per_request_seeds=False, checks_parity=True)
    assert capabilities("openai") == Capabilities(remote=True)
    assert trainable_backends() == ["hf", "remote-vllm", "vllm"]  # an OpenAI server's weights cannot be replaced: no training on it
    with pytest.raises(AttributeError):
        capabilities("hf").shares_weights = False  # frozen: a declaration, not a setting


def test_registry_finds_classes_lazily_and_refuses_unknown_names():
    assert all(isinstance(target, str) for target in BACKENDS.values())  # naming a backend imports no engine
    assert backend_class("hf").__name__ == "HFBackend"
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        backend_class("nope")
    with pytest.raises(ValueError, match="auto"):
        register_backend("auto", object)


def test_a_registered_backend_is_a_valid_train_setting(tiny_model_dir):
    from chord_env.agents.hf_backend import HFBackend
    from chord_env.trainer.config import ConfigError, TrainConfig

    class Sampler(HFBackend):
        capabilities = Capabilities(syncs_weights=False)

    class Trainable(HFBackend):
        capabilities = Capabilities(syncs_weights=True, checks_parity=True)

    register_backend("sampler", Sampler)
    register_backend("trainable", Trainable)
    try:
        assert TrainConfig(model=str(tiny_model_dir), backend="trainable").backend == "trainable"
        with pytest.raises(ConfigError, match="backend"):
            TrainConfig(model=str(tiny_model_dir), backend="sampler")
        with pytest.raises(ConfigError, match="backend"):
            TrainConfig(model=str(tiny_model_dir), backend="openai")
    finally:
        del BACKENDS["sampler"], BACKENDS["trainable"]


@pytest.mark.parametrize("path", ["trainer/train.py", "agents/collect.py", "agents/evaluate.py", "chord_env/cli.py"])
def test_no_branch_on_a_backend_name(path):
    """No comparison or membership test involves a registered backend's name (defaults may name one)."""
    names = set(BACKENDS)
    tree = ast.parse((ROOT / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Compare, ast.IfExp, ast.If, ast.Match)):
            constants = {c.value for c in ast.walk(node.test if isinstance(node, (ast.IfExp, ast.If)) else node)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str)}
            assert not constants & names, f"{path}:{node.lineno} branches on a backend name: {constants & names}"
