"""Shared-prefix forward (trainer/prefix.py): each GRPO group's prompt runs once, and the loss and gradient
equal the plain path's.

The comparisons run the tiny model in float64 with its RMSNorms computing in float64 too (transformers'
LlamaRMSNorm upcasts to float32 only, so a "float64" Llama still rounds at ~1e-7 there; sharing the prefix
sums the members' gradients before that norm's backward, which changes fp32 rounding, not the logic).
Everything else then differs only in the order of float64 sums: ~1e-15 of the gradient's scale measured;
the tolerance 1e-10 of the scale leaves 5 orders of room and is far below any logic error (a suffix that
did not see its prefix moves logprobs by O(1))."""

import copy
import types

import pytest
import torch
from transformers import AutoModelForCausalLM

from chord_env.trainer.batching import Sequence, pack
from chord_env.agents.runner import RolloutConfig
from chord_env.trainer.config import TrainConfig
from chord_env.trainer.logprobs import token_logprobs
from chord_env.trainer.prefix import pack_shared, prompt_length
from chord_env.trainer.train import _backward_rl, make_optimizer, update


def _rms_norm_float64(self, hidden):
    return self.weight * (hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


@pytest.fixture(scope="module")
def model64(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(_rms_norm_float64, module)
    return model.train()


def groups_of_rollouts(seed=0):
    """Three groups (prompts of 12, 7, 15 tokens; 3, 2 and 1 samples), one sample without loss tokens, and
    multi-turn samples (sampled tokens, a tool output, sampled tokens)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k, (prompt, n) in enumerate([(12, 3), (7, 2), (15, 1)]):
        p = torch.randint(1, 49000, (prompt,), generator=g).tolist()
        for j in range(n):
            turn1, tool, turn2 = 3 + 2 * j + k, 4, 2 + j
            ids = p + torch.randint(1, 49000, (turn1 + tool + turn2,), generator=g).tolist()
            mask = [0] * prompt + [1] * turn1 + [0] * tool + [1] * turn2
            logprobs = [-0.7 * m for m in mask]
            out.append(Sequence(ids, mask, logprobs, [1.0, -0.4, -0.6][j] + 0.1 * k))
    out.append(Sequence(out[0].token_ids[:12] + [5, 6], [0] * 14, [0.0] * 14, 0.3))  # no loss token: no prefix to share
    return out


def grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def assert_same(a, b):
    scale = float(b.abs().max())
    assert scale > 0
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10 * scale)


def test_pack_shared_runs_each_prompt_once_and_keeps_every_sequence():
    seqs = groups_of_rollouts()
    assert [prompt_length(s) for s in seqs[:3]] == [12, 12, 12] and prompt_length(seqs[-1]) == 13
    (batch,) = pack_shared(seqs, 10_000)
    assert batch.prefix_ids.shape[0] == 4  # three prompts and the loss-less sequence's own
    assert sorted(batch.index.tolist()) == list(range(len(seqs)))
    assert batch.num_loss_tokens == sum(sum(s.loss_mask) for s in seqs)
    for row, i in enumerate(batch.index.tolist()):
        start, g = int(batch.offset[row]), int(batch.group[row])
        n = len(seqs[i].token_ids) - start
        assert batch.prefix_ids[g, :start].tolist() == seqs[i].token_ids[:start]
        assert batch.input_ids[row, :n].tolist() == seqs[i].token_ids[start:]
        assert batch.old_logp[row, :n].tolist() == seqs[i].logprobs[start:]
    small = pack_shared(seqs, 40)  # splits groups; each piece keeps its prefix
    assert len(small) > 2 and sorted(i for b in small for i in b.index.tolist()) == list(range(len(seqs)))
    for b in small:
        assert b.prefix_ids.numel() + b.input_ids.numel() <= 40 or b.input_ids.shape[0] == 1


@pytest.mark.parametrize("checkpointing", [False, True])
def test_logprobs_and_gradient_equal_the_plain_path(model64, checkpointing):
    model = copy.deepcopy(model64)
    if checkpointing:  # transformers drops a KV cache in checkpointed layers unless told the layer only reads it
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    seqs = groups_of_rollouts()
    results = []
    for batches in (pack(seqs, 10_000), pack_shared(seqs, 10_000), pack_shared(seqs, 40)):
        model.zero_grad(set_to_none=True)
        logp = {}
        for mb in batches:
            out = token_logprobs(model, mb.input_ids, mb.attention_mask, mb.loss_mask, prefix=mb.prefix, chunk_tokens=5)["logp"]
            # a loss that weighs every token differently by its position in the whole sequence
            start = torch.zeros(len(mb.index), dtype=torch.long) if mb.offset is None else mb.offset
            positions = start[:, None] + torch.arange(out.shape[1])
            if mb.num_loss_tokens:
                (out * torch.cos(positions.double())).sum().backward()
            for row, i in enumerate(mb.index.tolist()):
                n = len(seqs[i].token_ids) - int(start[row])
                logp[i] = torch.cat([torch.zeros(int(start[row]), dtype=out.dtype), out[row, :n].detach()])
        results.append((logp, grads(model)))
    (plain, g_plain), *shared = results
    for logp, g in shared:
        for i in plain:
            torch.testing.assert_close(logp[i], plain[i], rtol=0, atol=1e-10)
        assert_same(g, g_plain)


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean"])
def test_rl_backward_equals_the_plain_path(model64, tiny_model_dir, aggregation):
    seqs = groups_of_rollouts()
    out = {}
    for share in (False, True):
        config = TrainConfig(model=str(tiny_model_dir), aggregation=aggregation, micro_batch_tokens=64,
                             rollout=RolloutConfig(max_context=64, max_turn_tokens=8), share_prefix=share, tis_cap=2.0)
        model = copy.deepcopy(model64)
        batches = pack_shared(seqs, 40) if share else pack(seqs, 10_000)
        metrics = _backward_rl(model, batches, 1.0, config, torch.device("cpu"))
        out[share] = (metrics, grads(model))
    assert_same(out[True][1], out[False][1])
    # the losses always; token-level metrics only under token-mean: under seq-mean each micro-batch's metrics
    # are weighted by its share of sequences, so a token mean depends on how the batch was cut, on either path
    keys = out[False][0].keys() if aggregation == "token-mean" else ["loss/rl", "grpo/pg_loss"]
    assert {k: out[True][0][k] for k in keys} == pytest.approx({k: out[False][0][k] for k in keys}, rel=1e-9, abs=1e-12)


def test_update_with_epochs_kl_and_shared_prefix_equals_the_plain_update(model64, tiny_model_dir):
    """The old-logprob pass, the reference model and several steps all through the shared path."""
    seqs = groups_of_rollouts()
    experts = [Sequence(s.token_ids, s.loss_mask, [0.0] * len(s.token_ids)) for s in groups_of_rollouts(seed=1)[:4]]
    after = {}
    for share in (False, True):
        config = TrainConfig(model=str(tiny_model_dir), micro_batch_tokens=64, rollout=RolloutConfig(max_context=64, max_turn_tokens=8), lr=1e-3,
                             ppo_epochs=2, ppo_mini_batches=2, kl_coef=0.05, share_prefix=share)
        model = copy.deepcopy(model64)
        ref = copy.deepcopy(model64).requires_grad_(False)
        metrics = update(model, make_optimizer(model, config), seqs, experts, 0.2, config, pad_id=0, ref_model=ref)
        after[share] = (metrics, torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert after[True][0]["grpo/clip_frac"] > 0 and after[True][0]["grpo/kl_ref"] > 0
    assert after[True][0] == pytest.approx(after[False][0], rel=1e-8, abs=1e-10)
    torch.testing.assert_close(after[True][1], after[False][1], rtol=0, atol=1e-9)
