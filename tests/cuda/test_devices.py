"""The trainer's and the HF backend's device paths: an update on the device (fp32, or bf16 autocast over
fp32 weights) against fp32 on CPU, the HF backend's behaviour logprobs against transformers in fp32,
and LoRA's merged weights against the adapted model. Each runs on CPU and, where there is one, on CUDA
(scripts/gpu_check.py runs this folder on a GPU machine)."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from chord_env.agents.hf_backend import HFBackend
from chord_env.agents.runner import RolloutConfig
from chord_env.agents.weight_sync import logprob_parity, merged_state_dict
from chord_env.trainer.batching import Sequence, pack
from chord_env.trainer.config import TrainConfig
from chord_env.trainer.logprobs import token_logprobs
from chord_env.trainer.lora import LoraSpec, add_adapters
from chord_env.trainer.train import make_optimizer, update


@pytest.fixture(scope="module")
def cpu_model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def batch():
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(16, 49000, (n,), generator=g).tolist() for n in (40, 24, 33, 17)]
    rl = [Sequence(x, [0] * 8 + [1] * (len(x) - 8), [-1.0] * len(x), a) for x, a in zip(ids, (1.0, -0.5, 0.7, -1.2))]
    return rl[:2], rl[2:]


def one_update(model, tiny_model_dir, device, dtype, **config):
    config = TrainConfig(model=str(tiny_model_dir), dtype=dtype, lr=1e-3, tis_cap=None, rollout=RolloutConfig(max_turn_tokens=8, max_context=64), **config)
    model = copy.deepcopy(model).to(device).train()
    rl, sft = batch()
    metrics = update(model, make_optimizer(model, config), rl, sft, 0.5, config, pad_id=0)
    return metrics, model


@pytest.mark.parametrize("dtype, rel", [("fp32", 1e-4), ("bf16", 3e-2)])
def test_an_update_on_the_device_matches_fp32_on_cpu(cpu_model, tiny_model_dir, device, dtype, rel):
    if device.type == "cpu" and dtype == "fp32":
        pytest.skip("the reference itself")
    want, _ = one_update(cpu_model, tiny_model_dir, torch.device("cpu"), "fp32")
    got, moved = one_update(cpu_model, tiny_model_dir, device, dtype)
    for key in ("loss/total", "loss/sft", "grad/norm"):
        assert got[key] == pytest.approx(want[key], rel=rel), key
    assert all(p.device.type == device.type and p.dtype == torch.float32 for p in moved.parameters())  # fp32 master weights


def test_hf_backend_logprobs_on_the_device_are_transformers_fp32(cpu_model, device):
    backend = HFBackend(copy.deepcopy(cpu_model), device=device)
    assert logprob_parity(backend, cpu_model) <= 1e-3


def test_lora_merged_weights_on_the_device_are_the_adapted_model(cpu_model, tiny_model_dir, device):
    pytest.importorskip("peft", reason='LoRA needs the lora extra: pip install -e ".[lora]"')
    model = copy.deepcopy(cpu_model).to(device).train()
    add_adapters(model, LoraSpec(rank=4))
    config = TrainConfig(model=str(tiny_model_dir), dtype="fp32", lr=5e-2, rollout=RolloutConfig(max_turn_tokens=8, max_context=64))
    optimizer = make_optimizer(model, config)
    for _ in range(2):  # B moves first (it starts at 0), then A too
        update(model, optimizer, [], batch()[1], 1.0, config, pad_id=0)
    plain = copy.deepcopy(cpu_model)
    plain.load_state_dict({k: v.cpu() for k, v in merged_state_dict(model).items()})
    mb = pack(batch()[0], 10_000)[0]
    with torch.no_grad():
        adapted = token_logprobs(model.eval(), *(t.to(device) for t in (mb.input_ids, mb.attention_mask, mb.loss_mask)))["logp"].cpu()
        merged = token_logprobs(plain, mb.input_ids, mb.attention_mask, mb.loss_mask)["logp"]
        base = token_logprobs(cpu_model, mb.input_ids, mb.attention_mask, mb.loss_mask)["logp"]
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-4)
    assert float((merged - base).abs().max()) > 1e-3
