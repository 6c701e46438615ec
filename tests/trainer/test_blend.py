"""The mu-blend inside `train.update`: the gradient each optimizer step applies is (1 - mu) g_RL + mu g_SFT.

mu = 0 is the RL update alone and never runs a forward pass on an expert trace; mu = 1 is the SFT
update alone and needs no rollouts; mu = 0.3 gives 0.7 g_RL + 0.3 g_SFT, also with several optimizer
steps per batch; the learned mu blends with the mu it reports and takes its step size and bounds from
the config.

The optimizer is replaced by a recorder that keeps the gradient each step would apply and leaves the
weights alone, so every step of a test sees the same model and the references are plain
`_backward_rl` / `_backward_sft` passes on it; `grad_clip` is so large that clipping multiplies by
exactly 1. Tolerances, relative to the gradient's largest entry, from the arithmetic of a float64
model: where `update` runs the very passes of the reference (mu = 0, mu = 1, and the learned mu,
which blends finished gradients) only float64 roundings separate them, so 1e-9. With a fixed mu the
blend scales each loss before its backward pass, and transformers' Llama computes RMSNorm (and eager
attention's softmax) in float32 even for a float64 model, so the gradient through those islands is
rounded to float32 after the scale instead of before: a few float32 roundings (2^-24 ~ 6e-8 each;
1.2e-7 measured), so 1e-6. The test checks that g_RL and g_SFT differ by more than 1e-2 of g_RL's
largest entry, so a wrong weight (0.3 for 0.7) misses by more than 4e-3.
"""

import math

import pytest
import torch
from torch import Tensor
from transformers import AutoModelForCausalLM

from chord_env.trainer.batching import Sequence, pack
from chord_env.trainer.config import load_config
from chord_env.trainer.train import _backward_rl, _backward_sft, _pack_rl, make_learned_mu, update

RL_IDS = range(100, 1000)
SFT_IDS = range(20_000, 30_000)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model64(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)


def sequences(ids: range, advantages: list[float], seed: int) -> list[Sequence]:
    """One sequence per advantage, token ids drawn from `ids` (RL and SFT ids never overlap)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k, adv in enumerate(advantages):
        n, start = 12 + 5 * k, 4 + k
        tokens = torch.randint(ids.start, ids.stop, (n,), generator=g).tolist()
        mask = [0] * start + [1] * (n - start)
        out.append(Sequence(tokens, mask, [-1.0 * m for m in mask], adv))
    return out


RL = sequences(RL_IDS, [1.0, -1.0, 0.5, -0.5], seed=0)  # two GRPO groups of two
SFT = sequences(SFT_IDS, [0.0] * 4, seed=1)


def config_for(tiny_model_dir, *overrides: str):
    """Small micro-batches (several per side), clipping that never acts, 4 rollouts and 4 traces."""
    return load_config(None, [
        f"model={tiny_model_dir}", "micro_batch_tokens=48", "rollout.max_context=64", "rollout.max_turn_tokens=8", "grad_clip=1e12",
        "tasks_per_step=2", "rollout.group_size=2", "expert_per_step=4", *overrides,
    ])


def flat_grad(model) -> Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in model.parameters()])


class GradRecorder:
    """Stands in for the optimizer: records the gradient each step would apply, leaves the weights alone."""

    def __init__(self, model):
        self.model = model
        self.param_groups = [{"lr": 0.0}]
        self.steps: list[Tensor] = []

    def step(self) -> None:
        self.steps.append(flat_grad(self.model).clone())

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.model.zero_grad(set_to_none=True)


class ForwardIds:
    """Records the token ids of every forward pass through the model's embedding (padding dropped)."""

    def __init__(self, model):
        self.ids: set[int] = set()
        self.handle = model.get_input_embeddings().register_forward_pre_hook(self.record)

    def record(self, module, args) -> None:
        self.ids |= set(args[0].flatten().tolist()) - {0}

    def __enter__(self) -> "ForwardIds":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def blend_steps(model, rl, sft, mu, config, **learned) -> tuple[list[Tensor], dict[str, float], set[int]]:
    """The gradients `update` applies at each optimizer step, its metrics, and the ids it forwarded."""
    recorder = GradRecorder(model)
    with ForwardIds(model) as seen:
        metrics = update(model, recorder, rl, sft, mu, config, pad_id=0, **learned)
    return recorder.steps, metrics, seen.ids


def reference(model, fn, batches, config) -> Tensor:
    model.zero_grad(set_to_none=True)
    fn(model, batches, 1.0, config, CPU)
    out = flat_grad(model).clone()
    model.zero_grad(set_to_none=True)
    return out


def g_rl(model, rl, config) -> Tensor:
    return reference(model, _backward_rl, _pack_rl(rl, config, 0), config)


def g_sft(model, sft, config) -> Tensor:
    return reference(model, _backward_sft, pack(sft, config.micro_batch_tokens, 0), config)


def assert_same_gradient(a: Tensor, b: Tensor, rel: float = 1e-9) -> None:
    scale = float(b.abs().max())
    assert scale > 0
    torch.testing.assert_close(a, b, rtol=0, atol=rel * scale)


PPO = [("ppo_epochs=1", "ppo_mini_batches=1"), ("ppo_epochs=2", "ppo_mini_batches=2")]


@pytest.mark.parametrize("ppo", PPO, ids=["one-step", "2x2-steps"])
def test_mu_0_is_the_rl_update_alone_without_an_sft_forward(model64, tiny_model_dir, ppo):
    config = config_for(tiny_model_dir, *ppo)
    steps, metrics, seen = blend_steps(model64, RL, SFT, 0.0, config)
    halves = [RL] if len(steps) == 1 else [RL[:2], RL[2:]] * 2
    assert len(steps) == len(halves)
    for step, rl in zip(steps, halves):
        assert_same_gradient(step, g_rl(model64, rl, config))
    assert seen and all(i in RL_IDS for i in seen), "an expert trace went through the model at mu = 0"
    assert "loss/sft" not in metrics and metrics["chord/mu"] == 0.0


@pytest.mark.parametrize("ppo", PPO, ids=["one-step", "2x2-steps"])
def test_mu_1_is_the_sft_update_alone_and_needs_no_rollouts(model64, tiny_model_dir, ppo):
    config = config_for(tiny_model_dir, *ppo)
    without_rollouts, metrics, seen = blend_steps(model64, [], SFT, 1.0, config)
    with_rollouts, _, seen_too = blend_steps(model64, RL, SFT, 1.0, config)
    halves = [SFT] if len(without_rollouts) == 1 else [SFT[:2], SFT[2:]] * 2
    assert len(without_rollouts) == len(with_rollouts) == len(halves)
    for a, b, sft in zip(without_rollouts, with_rollouts, halves):
        reference_grad = g_sft(model64, sft, config)
        assert_same_gradient(a, reference_grad)
        assert_same_gradient(b, reference_grad)
    assert all(i in SFT_IDS for i in seen | seen_too), "a rollout went through the model at mu = 1"
    assert "loss/rl" not in metrics and metrics["chord/mu"] == 1.0


@pytest.mark.parametrize("ppo", PPO, ids=["one-step", "2x2-steps"])
def test_mu_03_blends_07_rl_and_03_sft_at_every_step(model64, tiny_model_dir, ppo):
    config = config_for(tiny_model_dir, *ppo)
    steps, metrics, _ = blend_steps(model64, RL, SFT, 0.3, config)
    halves = [(RL, SFT)] if len(steps) == 1 else [(RL[:2], SFT[:2]), (RL[2:], SFT[2:])] * 2
    assert len(steps) == len(halves)
    for step, (rl, sft) in zip(steps, halves):
        rl_grad, sft_grad = g_rl(model64, rl, config), g_sft(model64, sft, config)
        assert float((rl_grad - sft_grad).abs().max()) > 1e-2 * float(rl_grad.abs().max())  # the sides differ
        assert_same_gradient(step, 0.7 * rl_grad + 0.3 * sft_grad, rel=1e-6)  # float32 islands, see the docstring
    blended_loss = 0.7 * metrics["loss/rl"] + 0.3 * metrics["loss/sft"]
    assert metrics["loss/total"] == pytest.approx(blended_loss, rel=1e-6)  # chord_loss sums in float32


def test_learned_mu_blends_with_the_mu_it_reports_and_steps_by_the_configured_lr(model64, tiny_model_dir):
    config = config_for(
        tiny_model_dir, "learned_mu=true", "mu=0.2", "learned_mu_lr=0.05", "learned_mu_bounds=[0.02, 0.95]"
    )
    learned_mu, mu_optimizer = make_learned_mu(config)
    assert mu_optimizer.param_groups[0]["lr"] == 0.05 and (learned_mu.mu_min, learned_mu.mu_max) == (0.02, 0.95)
    theta = learned_mu.theta.item()
    steps, metrics, _ = blend_steps(model64, RL, SFT, 0.2, config, learned_mu=learned_mu, mu_optimizer=mu_optimizer)
    mu = metrics["chord/mu"]
    assert mu == pytest.approx(0.2, rel=1e-6)
    rl_grad, sft_grad = g_rl(model64, RL, config), g_sft(model64, SFT, config)
    assert len(steps) == 1
    assert_same_gradient(steps[0], (1.0 - mu) * rl_grad + mu * sft_grad)
    # the reported norms are those of the unblended gradients, summed in float32 over 6.6M entries
    # (1.6e-5 off measured)
    assert metrics["chord/grad_norm_rl"] == pytest.approx(float(rl_grad.norm()), rel=1e-4)
    assert metrics["chord/grad_norm_sft"] == pytest.approx(float(sft_grad.norm()), rel=1e-4)
    # one SGD step of lr 0.05 on (theta - theta*)^2 moves theta 2 * 0.05 of the way to theta*
    logit = lambda x: math.log(x / (1 - x))  # noqa: E731
    target = logit(0.5) + math.log(metrics["chord/grad_norm_rl"] / metrics["chord/grad_norm_sft"])
    target = min(max(target, logit(0.02)), logit(0.95))
    assert learned_mu.theta.item() == pytest.approx(theta + 2 * 0.05 * (target - theta), abs=1e-5)  # theta is fp32
