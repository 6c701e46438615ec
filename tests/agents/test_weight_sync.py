"""Weight sync, checked by logprob parity against transformers on the NEW weights after a training-like
step (and shown to be out of parity with the old ones), for both vLLM paths and the HF backend.

The shared engine's original weights are restored at the end of every test that changes them.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

from chord_env.agents.hf_backend import HFBackend
from chord_env.agents.weight_sync import default_probes, logprob_parity, save_weights, sync_state_dict

TOL = 1e-3
CHANGED = 0.05


def trained(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of `model` after one AdamW step on a next-token loss over random ids (moves every weight,
    the tied embedding / output layer included)."""
    new = copy.deepcopy(model).train()
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(16, model.config.vocab_size, (2, 32), generator=generator)
    optimizer = torch.optim.AdamW(new.parameters(), lr=1e-2)
    new(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return new.eval()


@pytest.fixture(scope="module")
def probes(tiny_model):
    return default_probes(tiny_model.config.vocab_size)


def test_probes_include_a_long_prompt(probes):
    assert max(map(len, probes)) >= 300


def test_state_dict_skips_the_tied_head(tiny_model, tmp_path):
    names = set(sync_state_dict(tiny_model))
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names
    assert save_weights(tiny_model, tmp_path / "w.safetensors").stat().st_size > 0


def test_inplace_sync_gives_the_new_weights(tiny_vllm, tiny_model, probes):
    assert logprob_parity(tiny_vllm, tiny_model, probes) <= TOL  # also caches the prompts' old-weight KV
    new = trained(tiny_model)
    try:
        tiny_vllm.update_weights(new)
        assert logprob_parity(tiny_vllm, new, probes) <= TOL
        assert logprob_parity(tiny_vllm, tiny_model, probes) > CHANGED
    finally:
        tiny_vllm.update_weights(tiny_model)
    assert logprob_parity(tiny_vllm, tiny_model, probes) <= TOL


def test_parity_probe_sees_a_stale_prefix_cache(tiny_vllm, tiny_model, probes, tmp_path):
    """Loading weights without resetting the prefix cache must fail the check (so the check can fail)."""
    new = trained(tiny_model, seed=1)
    path = str(save_weights(new, tmp_path / "w.safetensors"))
    logprob_parity(tiny_vllm, tiny_model, probes)
    try:
        tiny_vllm.llm.collective_rpc("chord_env_load_weights", args=(path,))
        assert logprob_parity(tiny_vllm, new, probes) > CHANGED
    finally:
        tiny_vllm.update_weights(tiny_model)
    assert logprob_parity(tiny_vllm, tiny_model, probes) <= TOL


def test_restart_sync_gives_the_new_weights(tiny_vllm, tiny_model, probes):
    new = trained(tiny_model, seed=2)
    tiny_vllm.sync = "restart"
    try:
        tiny_vllm.update_weights(new)
        assert tiny_vllm.restarts >= 1 and os.path.isdir(tiny_vllm._weights_dir)
        assert logprob_parity(tiny_vllm, new, probes) <= TOL
        assert logprob_parity(tiny_vllm, tiny_model, probes) > CHANGED
    finally:
        tiny_vllm.sync = "inplace"
        tiny_vllm.update_weights(tiny_model)
    assert logprob_parity(tiny_vllm, tiny_model, probes) <= TOL


def test_hf_backend_sync(tiny_model, probes):
    backend = HFBackend(copy.deepcopy(tiny_model))
    new = trained(tiny_model, seed=3)
    backend.update_weights(new)
    assert logprob_parity(backend, new, probes) <= TOL
    assert logprob_parity(backend, tiny_model, probes) > CHANGED
