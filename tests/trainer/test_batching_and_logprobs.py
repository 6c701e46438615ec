"""Micro-batching by token budget, and token logprobs at loss positions against a naive full forward."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from chord_env.trainer.batching import Sequence, pack
from chord_env.trainer.logprobs import token_logprobs


def seq(n, masked_from):
    return Sequence(list(range(1, n + 1)), [0] * masked_from + [1] * (n - masked_from), [0.0] * masked_from + [-1.0] * (n - masked_from), 0.5)


def test_pack_respects_the_token_budget_and_keeps_everything():
    seqs = [seq(n, 2) for n in (5, 30, 7, 12, 30, 3)]
    batches = pack(seqs, max_tokens=40, pad_id=0)
    assert sum(b.input_ids.shape[0] for b in batches) == 6
    assert all(b.input_ids.numel() <= 40 or b.input_ids.shape[0] == 1 for b in batches)
    assert sum(b.num_loss_tokens for b in batches) == sum(sum(s.loss_mask) for s in seqs)
    lone = pack([seq(100, 1)], max_tokens=10)
    assert lone[0].input_ids.shape == (1, 100)


def test_collate_pads_right_and_masks_padding():
    (batch,) = pack([seq(3, 1), seq(5, 1)], max_tokens=100, pad_id=7)
    assert batch.input_ids[1].tolist() == [1, 2, 3, 7, 7] and batch.attention_mask[1].tolist() == [1, 1, 1, 0, 0]
    assert batch.loss_mask[1].tolist() == [False, True, True, False, False]
    assert batch.old_logp[1].tolist() == [0.0, -1.0, -1.0, 0.0, 0.0] and batch.advantages.tolist() == [0.5, 0.5]


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def test_logprobs_equal_a_naive_full_forward(tiny_model):
    """In float64: the two paths differ only in the order of sums (head on selected rows vs all rows),
    which moves a float64 logprob of magnitude ~11 by ~1e-14; 1e-9 leaves no room for a logic error."""
    model = copy.deepcopy(tiny_model).double()
    (batch,) = pack([seq(9, 3), seq(6, 2), seq(12, 5)], max_tokens=100, pad_id=0)
    out = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, stats=("entropy", "top2_margin"), chunk_tokens=4)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logp_all = torch.log_softmax(logits[:, :-1], -1)
    naive = torch.zeros_like(out["logp"])
    naive[:, 1:] = logp_all.gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    naive = naive * batch.loss_mask
    torch.testing.assert_close(out["logp"], naive, atol=1e-9, rtol=0)
    p = logp_all.exp()
    entropy = torch.zeros_like(naive)
    entropy[:, 1:] = -(p * logp_all).sum(-1)
    torch.testing.assert_close(out["entropy"], entropy * batch.loss_mask, atol=1e-9, rtol=0)
    assert not out["entropy"].requires_grad and out["logp"].requires_grad


def test_chunked_checkpointed_gradient_equals_the_plain_one(tiny_model):
    """Chunking changes only the order of floating-point sums, so the test runs in float64 where that
    order cannot matter at any tolerance a logic error would hide under: each gradient entry sums at most
    ~1e5 products, so reordering moves it by at most 1e5 * 2**-53 * sum|terms| ~ 1e-11 of its scale
    (in fp32 the same bound is ~6e-3 relative, and 5e-5 absolute differences were seen)."""
    model = copy.deepcopy(tiny_model).double()
    (batch,) = pack([seq(10, 2), seq(7, 1)], max_tokens=100)
    grads = []
    for chunk in (3, 10_000):
        model.zero_grad()
        out = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, chunk_tokens=chunk)
        assert out["logp"].dtype == torch.float64
        out["logp"].sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    scale = grads[1].abs().max()
    assert scale > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-9 * float(scale))
