"""The update step: micro-batching never changes the gradient (normalisers come from the whole batch),
sequences without loss tokens are skipped, and the ids trained on are the trajectories' ids."""

import copy
import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM

from chord_env.trainer.batching import Sequence, pack
from chord_env.agents.runner import RolloutConfig
from chord_env.trainer.config import TrainConfig
from chord_env.trainer.train import _backward_rl, _backward_sft, make_optimizer, rl_sequences, update
from chord_env.types import Trajectory


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def seqs():
    g = torch.Generator().manual_seed(0)
    out = []
    for n, start, adv in [(12, 4, 1.0), (30, 10, -0.5), (7, 3, 0.3), (20, 20, 2.0), (16, 6, -1.2)]:  # (20, 20): no loss token
        ids = torch.randint(1, 49000, (n,), generator=g).tolist()
        mask = [0] * start + [1] * (n - start)
        out.append(Sequence(ids, mask, [-1.0 * m for m in mask], adv))
    return out


@pytest.fixture(scope="module")
def model64(model):
    """A float64 copy for the gradient-equality tests: micro-batching only reorders sums, which moves a
    float64 gradient entry by ~1e-11 of its scale at these sizes (fp32 moved it by up to 5e-5 absolute)."""
    return copy.deepcopy(model).double()


def assert_same_gradient(a, b):
    scale = float(b.abs().max())
    assert scale > 0
    torch.testing.assert_close(a, b, rtol=0, atol=1e-9 * scale)


def grads_after(model, fn, batches, config):
    model.zero_grad(set_to_none=True)
    fn(model, batches, 1.0, config, torch.device("cpu"))
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean"])
def test_rl_gradient_does_not_depend_on_micro_batching(model64, tiny_model_dir, aggregation):
    config = TrainConfig(model=str(tiny_model_dir), aggregation=aggregation, micro_batch_tokens=2048, rollout=RolloutConfig(max_context=64, max_turn_tokens=8))
    whole = grads_after(model64, _backward_rl, pack(seqs(), 10_000), config)
    split = grads_after(model64, _backward_rl, pack(seqs(), 30), config)
    assert len(pack(seqs(), 30)) > 2
    assert_same_gradient(whole, split)


def test_sft_gradient_does_not_depend_on_micro_batching(model64, tiny_model_dir):
    config = TrainConfig(model=str(tiny_model_dir), token_weight="phi", micro_batch_tokens=2048, rollout=RolloutConfig(max_context=64, max_turn_tokens=8))
    whole = grads_after(model64, _backward_sft, pack(seqs(), 10_000), config)
    split = grads_after(model64, _backward_sft, pack(seqs(), 30), config)
    assert_same_gradient(whole, split)


def test_a_batch_without_loss_tokens_is_skipped(model, tiny_model_dir):
    config = TrainConfig(model=str(tiny_model_dir), micro_batch_tokens=2048, rollout=RolloutConfig(max_context=64, max_turn_tokens=8))
    empty = [s for s in seqs() if not any(s.loss_mask[1:])]
    metrics = _backward_rl(model, pack(empty + seqs()[:1], 20), 1.0, config, torch.device("cpu"))
    assert "loss/rl" in metrics


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_a_step_whose_rollouts_carry_no_loss_token_still_steps(model, tiny_model_dir, mu):
    """Every episode cut before its first turn: the RL side adds nothing, the step goes on (SFT alone at
    mu > 0, no change at mu = 0) and the metrics say so instead of crashing."""
    config = TrainConfig(model=str(tiny_model_dir), micro_batch_tokens=2048, rollout=RolloutConfig(max_context=64, max_turn_tokens=8), lr=1e-3)
    local = copy.deepcopy(model)
    before = [p.detach().clone() for p in local.parameters()]
    cut = [s for s in seqs() if not any(s.loss_mask[1:])]
    metrics = update(local, make_optimizer(local, config), cut, seqs()[:2], mu, config, pad_id=0)
    moved = any(not torch.equal(a, b) for a, b in zip(before, local.parameters()))
    assert moved == (mu > 0) and "loss/rl" not in metrics
    assert metrics["loss/total"] == pytest.approx(mu * metrics.get("loss/sft", 0.0))


def test_rl_sequences_keep_the_sampled_ids_and_normalise_per_group():
    def traj(group, reward, ids):
        return Trajectory(token_ids=ids, loss_mask=[0, 1, 1], logprobs=[0.0, -0.1, -0.2], prompt_length=1, reward=reward, group_id=group)

    trajs = [traj("a", 1.0, [5, 6, 7]), traj("a", 0.0, [5, 8, 9]), traj("b", 2.0, [1, 2, 3]), traj("b", 2.0, [1, 2, 4])]
    out = rl_sequences(trajs)
    assert [s.token_ids for s in out] == [t.token_ids for t in trajs]
    assert [s.logprobs for s in out] == [t.logprobs for t in trajs]
    # group a: rewards [1, 0], mean 0.5, unbiased std 0.7071 -> +-0.7071; group b: identical -> 0
    assert [round(s.advantage, 4) for s in out] == [0.7071, -0.7071, 0.0, 0.0]


def test_an_episode_without_tokens_counts_in_its_group_but_yields_no_sequence():
    """An env that failed before the prompt was encoded gives an empty trajectory (agents/runner.py)."""
    full = Trajectory(token_ids=[5, 6, 7], loss_mask=[0, 1, 1], logprobs=[0.0, -0.1, -0.2], prompt_length=1, reward=1.0, group_id="a")
    empty = Trajectory(token_ids=[], loss_mask=[], logprobs=[], prompt_length=0, reward=0.0, group_id="a")
    out = rl_sequences([full, empty, dataclasses.replace(empty, group_id="b")])
    assert [s.token_ids for s in out] == [[5, 6, 7]]
    assert round(out[0].advantage, 4) == 0.7071  # normalised against the empty one's reward 0
