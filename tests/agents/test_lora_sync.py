"""LoRA on the engine side: the in-place vLLM sync of an adapted model gives the engine the merged
weights (parity with the adapted model, out of parity with the base), and a LoRA training run on the
shared engine syncs after each step, its parity probe and its rollouts' behaviour logprobs agreeing
with the trainer's adapted model. The shared engine gets its original weights back at the end."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from chord_env.agents.backend import BACKENDS, register_backend
from chord_env.agents.weight_sync import logprob_parity
from chord_env.trainer.config import load_config
from chord_env.trainer.lora import LoraSpec, add_adapters
from chord_env.trainer.metrics import read_metrics
from chord_env.trainer.train import train

pytest.importorskip("peft", reason='LoRA needs the lora extra: pip install -e ".[lora]"')

TOL = 1e-3
CHANGED = 0.05
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def adapted_after_a_step(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with LoRA adapters on every linear layer, after two AdamW steps on a next-token
    loss over random ids (B is 0 at the start: the first step moves B, the second A and B)."""
    new = copy.deepcopy(model).train()
    add_adapters(new, LoraSpec(rank=4))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(16, model.config.vocab_size, (2, 32), generator=generator)
    optimizer = torch.optim.AdamW([p for p in new.parameters() if p.requires_grad], lr=5e-2)
    for _ in range(2):
        new(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return new.eval()


def test_inplace_sync_of_an_adapted_model_gives_the_merged_weights(tiny_vllm, tiny_model):
    new = adapted_after_a_step(tiny_model)
    try:
        tiny_vllm.update_weights(new)
        assert logprob_parity(tiny_vllm, new) <= TOL
        assert logprob_parity(tiny_vllm, tiny_model) > CHANGED
    finally:
        tiny_vllm.update_weights(tiny_model)
    assert logprob_parity(tiny_vllm, tiny_model) <= TOL


@pytest.fixture
def shared_engine(tiny_vllm, tiny_model):
    """A registered backend that is the session's engine (started once for all tests), so a training run
    drives it without starting another; its weights are put back afterwards."""

    class SharedEngine:
        capabilities = tiny_vllm.capabilities

        def __init__(self, model_dir, **options):
            pass

        def generate(self, prompts, params):
            return tiny_vllm.generate(prompts, params)

        def update_weights(self, model):
            tiny_vllm.update_weights(model)

        def close(self):
            pass

    register_backend("shared-tiny-vllm", SharedEngine)
    try:
        yield "shared-tiny-vllm"
    finally:
        del BACKENDS["shared-tiny-vllm"]
        tiny_vllm.update_weights(tiny_model)


def test_a_lora_run_syncs_merged_weights_with_parity(shared_engine, tiny_vllm, tiny_model, tiny_model_dir, tmp_path):
    expert = tmp_path / "expert.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {k} + {k}?"}, {"role": "assistant", "content": f"It is {2 * k}."}], "tools": []}
            for k in range(4)]
    expert.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = load_config(CONFIGS / "chord-fixed-mu.yaml", [
        f"model={tiny_model_dir}", f"expert={expert}", f"out={tmp_path / 'run'}", f"backend={shared_engine}", "lora.rank=4",
        "steps=2", "tasks_per_step=2", "rollout.group_size=2", "expert_per_step=2", "rollout.max_turn_tokens=4",
        "rollout.max_context=1000", "lr=5e-2", "eval_every=0", "checkpoint_every=0",
    ])
    metrics = read_metrics(train(config) / "metrics.jsonl")
    assert "sync/parity_max_diff" not in metrics[0]  # the engine starts on the initial weights (B = 0)
    assert metrics[1]["sync/parity_max_diff"] <= TOL  # after step 1's update: engine == the adapted trainer
    assert metrics[1]["sync/logprob_max_diff"] <= TOL  # the rollouts were sampled from the updated adapter
    assert logprob_parity(tiny_vllm, tiny_model) > CHANGED  # and the engine no longer holds the base weights
