"""Several optimizer steps per rollout batch (ppo_epochs, ppo_mini_batches) and truncated importance
sampling (TIS) against the rollout engine's behaviour logprobs: hand-computed values.

Model-level comparisons run the tiny model in float64 where they compare two computations of the same
number, so a tolerance of 1e-9 (relative to the value's scale) is many orders above fp64 rounding
(~1e-13 here) and far below any logic error."""

import copy
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from chord_env.trainer.batching import Sequence, pack
from chord_env.agents.runner import RolloutConfig
from chord_env.trainer.config import TrainConfig, load_config
from chord_env.trainer.logprobs import token_logprobs
from chord_env.trainer.losses import grpo_loss, tis_weights
from chord_env.trainer.train import _optimizer_step, make_optimizer, update

# The 2 x 3 batch of test_losses.py: old_logp = -1, logp = -1 + log r, A = [+1, -1], token (1, 2) masked
# out; eps 0.2, dual clip c = 3. Its per-token PPO losses (before TIS) are
#   row 0: [-1.0, -1.2, -0.5]    row 1: [0.8, 3.0, (masked)]
RATIO = torch.tensor([[1.0, 1.5, 0.5], [0.5, 4.0, 2.0]])
OLD_LOGP = torch.full((2, 3), -1.0)
ADVANTAGES = torch.tensor([1.0, -1.0])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
# p_old / p_engine per token: engine logp = old - log(rho)
RHO = torch.tensor([[1.0, 1.5, 4.0], [0.5, 2.0, 9.0]])
ENGINE_LOGP = OLD_LOGP - RHO.log()


def _logp():
    return (OLD_LOGP + RATIO.log()).requires_grad_()


def test_tis_weight_is_the_truncated_ratio_by_hand():
    w, capped = tis_weights(OLD_LOGP, ENGINE_LOGP, MASK, cap=2.0)
    # min(rho, 2): [1, 1.5, 2] and [0.5, 2, masked -> 1]; the cap acted on rho = 4 only (9 is masked out)
    torch.testing.assert_close(w, torch.tensor([[1.0, 1.5, 2.0], [0.5, 2.0, 1.0]]))
    assert capped.tolist() == [[False, False, True], [False, False, False]]
    w_big, capped_big = tis_weights(OLD_LOGP, ENGINE_LOGP, MASK, cap=100.0)
    torch.testing.assert_close(w_big, torch.where(MASK.bool(), RHO, 1.0))
    assert not capped_big.any() and not w.requires_grad


def test_grpo_loss_with_tis_by_hand():
    logp = _logp()
    loss, metrics = grpo_loss(logp, OLD_LOGP, ADVANTAGES, MASK, behaviour_logp=ENGINE_LOGP, tis_cap=2.0)
    # (-1.0 * 1 - 1.2 * 1.5 - 0.5 * 2 + 0.8 * 0.5 + 3.0 * 2) / 5 = 2.6 / 5
    assert loss.item() == pytest.approx(0.52, abs=1e-6)
    assert metrics["tis/weight_mean"] == pytest.approx((1 + 1.5 + 2 + 0.5 + 2) / 5)
    assert metrics["tis/capped_frac"] == pytest.approx(1 / 5)
    # d loss / d logp = -w A r / 5 on unclipped tokens: (0, 0): -1 * 1 * 1 / 5; (0, 2): -2 * 1 * 0.5 / 5
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.2, 0.0, -0.2], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="behaviour_logp"):
        grpo_loss(_logp(), OLD_LOGP, ADVANTAGES, MASK, tis_cap=2.0)


def test_tis_is_exactly_one_when_the_engine_agrees():
    gen = torch.Generator().manual_seed(0)
    old = -torch.rand(3, 7, generator=gen) * 5
    logp = (old + 0.3 * torch.randn(3, 7, generator=gen)).requires_grad_()
    mask, adv = torch.rand(3, 7, generator=gen) > 0.3, torch.tensor([0.5, -1.0, 2.0])
    w, capped = tis_weights(old, old.clone(), mask, cap=2.0)
    assert torch.equal(w, torch.ones(3, 7)) and not capped.any()
    with_tis, m = grpo_loss(logp, old, adv, mask, behaviour_logp=old.clone(), tis_cap=2.0)
    without, _ = grpo_loss(logp, old, adv, mask)
    assert with_tis.item() == without.item() and m["tis/weight_mean"] == 1.0


# ---------------------------------------------------------------------------------------------- update


@pytest.fixture(scope="module")
def model32(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def model64(model32):
    return copy.deepcopy(model32).double()


def rollouts(n_groups=2, group=3, prompt=10, seed=0):
    """GRPO-like sequences: each group shares a prompt; responses of varying length; engine logprobs -1."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_groups):
        p = torch.randint(1, 49000, (prompt,), generator=g).tolist()
        for j in range(group):
            r = torch.randint(1, 49000, (4 + 3 * j,), generator=g).tolist()
            out.append(Sequence(p + r, [0] * prompt + [1] * len(r), [0.0] * prompt + [-1.0] * len(r), [1.0, -0.5, -1.5][j]))
    return out


def config_for(tiny_model_dir, **kw):
    base = dict(model=str(tiny_model_dir), micro_batch_tokens=4096, rollout=RolloutConfig(max_context=64, max_turn_tokens=16), tis_cap=None, dual_clip_c=3.0)
    return TrainConfig(**{**base, **kw})


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def trainer_logp(model, seqs, temperature=1.0):
    (mb,) = pack(seqs, 10**6)
    with torch.no_grad():
        return mb, token_logprobs(model, mb.input_ids, mb.attention_mask, mb.loss_mask, temperature=temperature)["logp"]


def count_forwards(model):
    calls = []
    handle = model.base_model.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_one_epoch_is_todays_single_step_with_ratio_one_and_no_extra_forward(model64, tiny_model_dir):
    config = config_for(tiny_model_dir, lr=1e-3)
    seqs = rollouts()
    a, b = copy.deepcopy(model64), copy.deepcopy(model64)
    calls, handle = count_forwards(a)
    metrics = update(a, make_optimizer(a, config), seqs, [], 0.0, config, pad_id=0)
    handle.remove()
    reference = _optimizer_step(b, make_optimizer(b, config), seqs, [], 0.0, config, pad_id=0)
    assert len(calls) == 1  # one micro-batch, one forward: no old-logprob pass
    assert torch.equal(params(a), params(b)) and metrics == reference
    assert metrics["grpo/ratio_mean"] == 1.0 and metrics["grpo/clip_frac"] == 0.0 and metrics["grpo/approx_kl"] == 0.0
    assert "ppo/optimizer_steps" not in metrics


def test_one_epoch_gradient_is_the_plain_policy_gradient(model64, tiny_model_dir):
    """ratio == 1 at one step per batch: the PPO gradient is that of token-mean(-A logp), computed here directly."""
    from chord_env.trainer.train import _backward_rl

    config = config_for(tiny_model_dir)
    seqs = rollouts()
    model = copy.deepcopy(model64)
    model.zero_grad(set_to_none=True)
    _backward_rl(model, pack(seqs, 4096), 1.0, config, torch.device("cpu"))
    ours = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    (mb,) = pack(seqs, 10**6)
    logp = token_logprobs(model, mb.input_ids, mb.attention_mask, mb.loss_mask)["logp"]
    (-(mb.advantages.double()[:, None] * logp)[mb.loss_mask].sum() / mb.loss_mask.sum()).backward()
    direct = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(ours, direct, rtol=0, atol=1e-9 * float(direct.abs().max()))


def hand_ppo_loss(logp, old, adv, mask, eps=0.2, c=3.0):
    """Token-mean PPO loss with dual clip, written out independently of grpo_loss; also the clipped fraction."""
    total, clipped, n = 0.0, 0, 0
    for b in range(logp.shape[0]):
        A = float(adv[b])
        for t in range(logp.shape[1]):
            if not mask[b, t]:
                continue
            r = math.exp(float(logp[b, t]) - float(old[b, t]))
            unclipped, clip = -A * r, -A * min(max(r, 1 - eps), 1 + eps)
            tok = max(unclipped, clip)
            clipped += clip > unclipped
            if A < 0:
                tok = min(tok, -A * c)
            total, n = total + tok, n + 1
    return total / n, clipped / n


def test_second_epoch_moves_the_ratio_and_the_clip_acts(model64, tiny_model_dir):
    config = config_for(tiny_model_dir, lr=1e-3, ppo_epochs=2)
    seqs = rollouts()
    a, b = copy.deepcopy(model64), copy.deepcopy(model64)
    mb, old = trainer_logp(a, seqs)  # the rollout weights' logprobs
    calls, handle = count_forwards(a)
    metrics = update(a, make_optimizer(a, config), seqs, [], 0.0, config, pad_id=0)
    handle.remove()
    assert metrics["ppo/optimizer_steps"] == 2 and len(calls) == 3  # old-logprob pass + 2 steps
    # step 1 is the one-step update (ratio == 1); replay it on b, then step 2's loss by hand from b's weights
    one = config_for(tiny_model_dir, lr=1e-3)
    first = update(b, make_optimizer(b, one), seqs, [], 0.0, one, pad_id=0)
    _, after_one = trainer_logp(b, seqs)
    expected_loss, expected_clip = hand_ppo_loss(after_one, old, mb.advantages, mb.loss_mask)
    second_loss = 2 * metrics["loss/rl"] - first["loss/rl"]
    second_clip = 2 * metrics["grpo/clip_frac"] - first["grpo/clip_frac"]
    assert second_loss == pytest.approx(expected_loss, rel=1e-9, abs=1e-12)
    assert second_clip == pytest.approx(expected_clip, abs=1e-6) and expected_clip > 0.1  # the metric is a float32 mean
    assert metrics["grpo/ratio_mean"] != 1.0 and metrics["grpo/approx_kl"] > 0
    assert first["grpo/clip_frac"] == 0.0


def test_mini_batches_split_rollouts_and_experts_alike(model64, tiny_model_dir):
    config = config_for(tiny_model_dir, lr=1e-4, ppo_epochs=2, ppo_mini_batches=3)
    seqs = rollouts()  # 6 rollouts -> 3 mini-batches of 2
    experts = [Sequence(s.token_ids, s.loss_mask, [0.0] * len(s.token_ids)) for s in rollouts(1, 3, seed=1)]  # 3 -> 1 each
    model = copy.deepcopy(model64)
    calls, handle = count_forwards(model)
    metrics = update(model, make_optimizer(model, config), seqs, experts, 0.3, config, pad_id=0)
    handle.remove()
    assert metrics["ppo/optimizer_steps"] == 6
    assert len(calls) == 1 + 6 * 2  # old-logprob pass, then per step one RL and one SFT forward
    assert "loss/sft" in metrics and "loss/rl" in metrics and metrics["chord/mu"] == pytest.approx(0.3)
    # fewer expert traces than mini-batches: the split follows the smaller side, every step still blends both
    model = copy.deepcopy(model64)
    metrics = update(model, make_optimizer(model, config), seqs, experts[:2], 0.3, config, pad_id=0)
    assert metrics["ppo/optimizer_steps"] == 4


def test_tis_in_the_update(model32, tiny_model_dir):
    """Engine logprobs equal to the trainer's: w == 1 exactly, the update equals the one without TIS. An
    engine that gave every sampled token a third of the trainer's probability: w = min(3, 2) = 2."""
    seqs = rollouts()
    mb, logp = trainer_logp(model32, seqs)
    agreeing = [Sequence(s.token_ids, s.loss_mask, logp[mb.index.tolist().index(i), : len(s.token_ids)].tolist(), s.advantage) for i, s in enumerate(seqs)]
    off = [Sequence(s.token_ids, s.loss_mask, [v - math.log(3.0) * m for v, m in zip(a.logprobs, s.loss_mask)], s.advantage) for s, a in zip(seqs, agreeing)]
    results = {}
    for name, batch, cap in [("none", agreeing, None), ("agree", agreeing, 2.0), ("off", off, 2.0)]:
        model = copy.deepcopy(model32)
        config = config_for(tiny_model_dir, lr=1e-4, tis_cap=cap)
        results[name] = (update(model, make_optimizer(model, config), batch, [], 0.0, config, pad_id=0), params(model))
    assert results["agree"][0]["tis/weight_mean"] == 1.0 and results["agree"][0]["tis/capped_frac"] == 0.0
    assert torch.equal(results["agree"][1], results["none"][1])
    assert results["agree"][0]["loss/rl"] == results["none"][0]["loss/rl"]
    off_metrics = results["off"][0]
    assert off_metrics["tis/weight_mean"] == pytest.approx(2.0, abs=1e-6) and off_metrics["tis/capped_frac"] == 1.0
    assert off_metrics["loss/rl"] == pytest.approx(2 * results["none"][0]["loss/rl"], rel=1e-6)
    assert off_metrics["sync/logprob_max_diff"] == pytest.approx(math.log(3.0), abs=1e-6)


def test_config_checks_the_new_fields():
    ok = load_config(None, ["model=m", "ppo_epochs=4", "ppo_mini_batches=2", "tis_cap=null"])
    assert (ok.ppo_epochs, ok.ppo_mini_batches, ok.tis_cap) == (4, 2, None)
    assert TrainConfig(model="m").tis_cap == 2.0 and TrainConfig(model="m").ppo_epochs == 1
    for override, field in [("ppo_epochs=0", "ppo_epochs"), ("tis_cap=0.5", "tis_cap"), ("ppo_mini_batches=9", "ppo_mini_batches")]:
        with pytest.raises(ValueError, match=field):
            load_config(None, ["model=m", "expert_per_step=8", override])
    with pytest.raises(ValueError, match="tasks_per_step"):
        load_config(None, ["model=m", "tasks_per_step=2", "rollout.group_size=2", "ppo_mini_batches=5", "expert_per_step=8"])
    load_config(None, ["model=m", "mu=0", "expert_per_step=0", "ppo_mini_batches=4"])  # no SFT term: no expert needed
