"""The extension seams as docs/design.md states them: a token weight registered in
`token_weights.TOKEN_WEIGHTS` alone is usable from a config and trains; every tool world in `WORLDS`
has its env (`envs/worlds.py`) and its registered id (`chord_env/registry.py`)."""

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM

from chord_env.envs import worlds as world_envs
from chord_env.registry import BUILTINS
from chord_env.tools.worlds import WORLDS
from chord_env.trainer.batching import Sequence, pack
from chord_env.trainer.config import load_config
from chord_env.trainer.token_weights import TOKEN_WEIGHTS
from chord_env.trainer.train import _backward_sft


def half(logp: torch.Tensor) -> torch.Tensor:
    """A new token weight: 0.5 on every expert token."""
    return torch.full_like(logp.detach(), 0.5)


def expert_traces() -> list[Sequence]:
    g = torch.Generator().manual_seed(0)
    out = []
    for n, start in [(14, 4), (22, 6), (9, 3)]:
        mask = [0] * start + [1] * (n - start)
        out.append(Sequence(torch.randint(1, 49000, (n,), generator=g).tolist(), mask, [0.0] * n))
    return out


def test_a_token_weight_registered_in_token_weights_is_usable_from_a_config(monkeypatch, tiny_model_dir):
    with pytest.raises(ValueError, match="token_weight"):
        load_config(None, ["model=m", "token_weight=half"])
    monkeypatch.setitem(TOKEN_WEIGHTS, "half", half)
    config = load_config(None, [f"model={tiny_model_dir}", "token_weight=half", "rollout.max_context=64", "rollout.max_turn_tokens=8"])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
    grads = {}
    for name in ("half", "none"):
        model.zero_grad(set_to_none=True)
        weighted = dataclasses.replace(config, token_weight=name)
        metrics = _backward_sft(model, pack(expert_traces(), 10_000, 0), 1.0, weighted, torch.device("cpu"))
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        assert metrics["sft/weight_mean"] == (0.5 if name == "half" else 1.0)
    # the same passes with the loss halved: halving is exact in binary floating point, float32 included
    scale = float(grads["none"].abs().max())
    torch.testing.assert_close(grads["half"], 0.5 * grads["none"], rtol=0, atol=1e-9 * scale)


def test_every_tool_world_has_its_env_and_its_registered_id():
    expected = {f"chord/World-{name.capitalize()}-v0": f"chord_env.envs.worlds:{name}_env" for name in WORLDS}
    assert {k: v for k, v in BUILTINS.items() if k.startswith("chord/World-")} == expected
    assert all(callable(getattr(world_envs, f"{name}_env", None)) for name in WORLDS)
