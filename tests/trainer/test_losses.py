"""Hand-worked checks of the CHORD losses (trainer/losses.py)."""

import math

import pytest
import torch

from chord_env.trainer.losses import chord_loss, group_advantages, grpo_loss, sft_loss
from chord_env.trainer.token_weights import phi

# A 2 x 3 batch, eps_low = eps_high = 0.2, dual clip c = 3. old_logp = -1 and logp = -1 + log r.
# Row 0, A = +1, r = [1.0, 1.5, 0.5], all tokens masked in:
#   r = 1.0: max(-1.0, -1.0) = -1.0
#   r = 1.5: max(-1.5, -1.2) = -1.2   <- clipped (positive A)
#   r = 0.5: max(-0.5, -0.8) = -0.5
# Row 1, A = -1, r = [0.5, 4.0, 2.0], last token masked out:
#   r = 0.5: max(0.5, 0.8) = 0.8, min(0.8, 3) = 0.8   <- clipped (negative A)
#   r = 4.0: max(4.0, 1.2) = 4.0, min(4.0, 3) = 3.0   <- dual-clipped
# token-mean = (-1 - 1.2 - 0.5 + 0.8 + 3) / 5 = 1.1 / 5 = 0.22
# seq-mean   = mean(-2.7 / 3, 3.8 / 2) = mean(-0.9, 1.9) = 0.5
RATIO = torch.tensor([[1.0, 1.5, 0.5], [0.5, 4.0, 2.0]])
OLD_LOGP = torch.full((2, 3), -1.0)
ADVANTAGES = torch.tensor([1.0, -1.0])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def _logp(ratio=RATIO):
    return (OLD_LOGP + ratio.log()).requires_grad_()


def test_grpo_token_mean_by_hand():
    logp = _logp()
    loss, metrics = grpo_loss(logp, OLD_LOGP, ADVANTAGES, MASK)
    assert loss.item() == pytest.approx(0.22, abs=1e-6)
    assert metrics["grpo/clip_frac"] == pytest.approx(2 / 5)
    assert metrics["grpo/dual_clip_frac"] == pytest.approx(1 / 5)
    assert metrics["grpo/ratio_mean"] == pytest.approx(7.5 / 5)
    # k3 = r - 1 - log r: 0 + 0.094535 + 0.193147 + 0.193147 + 1.613706 = 2.094535
    assert metrics["grpo/approx_kl"] == pytest.approx(2.094535 / 5, abs=1e-6)
    # d loss / d logp = -A r / 5 on unclipped tokens, 0 on clipped, dual-clipped and masked ones
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.2, 0.0, -0.1], [0.0, 0.0, 0.0]]))


def test_grpo_seq_mean_by_hand():
    loss, _ = grpo_loss(_logp(), OLD_LOGP, ADVANTAGES, MASK, aggregation="seq-mean")
    assert loss.item() == pytest.approx(0.5, abs=1e-6)


def test_grpo_without_dual_clip():
    # the r = 4 token keeps its 4.0: (-2.7 + 0.8 + 4.0) / 5 = 0.42
    loss, metrics = grpo_loss(_logp(), OLD_LOGP, ADVANTAGES, MASK, dual_clip_c=None)
    assert loss.item() == pytest.approx(0.42, abs=1e-6)
    assert metrics["grpo/dual_clip_frac"] == 0.0


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean"])
@pytest.mark.parametrize("masked_value", [100.0, float("nan"), float("inf")])
def test_grpo_ignores_values_under_mask(aggregation, masked_value):
    ref_logp = torch.full((2, 3), -1.5)
    kwargs = dict(aggregation=aggregation, kl_coef=0.1)
    loss, metrics = grpo_loss(_logp(), OLD_LOGP, ADVANTAGES, MASK, ref_logp=ref_logp, **kwargs)
    ratio, old, ref = RATIO.clone(), OLD_LOGP.clone(), ref_logp.clone()
    ratio[1, 2], old[1, 2], ref[1, 2] = masked_value, masked_value, masked_value
    logp = _logp(ratio)
    loss2, metrics2 = grpo_loss(logp, old, ADVANTAGES, MASK, ref_logp=ref, **kwargs)
    assert loss2.item() == pytest.approx(loss.item()) and metrics2 == pytest.approx(metrics)
    loss2.backward()
    assert torch.isfinite(logp.grad).all() and logp.grad[1, 2] == 0.0


def test_grpo_kl_to_reference_by_hand():
    # ref - logp = log 2 on token (0, 0), 0 elsewhere: k3 = 2 - log 2 - 1 = 0.306853 there, 0 elsewhere
    logp = _logp()
    ref_logp = logp.detach().clone()
    ref_logp[0, 0] += math.log(2.0)
    loss, metrics = grpo_loss(logp, OLD_LOGP, ADVANTAGES, MASK, ref_logp=ref_logp, kl_coef=0.5)
    assert metrics["grpo/kl_ref"] == pytest.approx(0.306853 / 5, abs=1e-6)
    assert loss.item() == pytest.approx(0.22 + 0.5 * 0.306853 / 5, abs=1e-6)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, OLD_LOGP, ADVANTAGES, MASK, kl_coef=0.5)


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean"])
def test_empty_mask_gives_zero_loss_with_grad(aggregation):
    logp = _logp()
    empty = torch.zeros(2, 3)
    loss, metrics = grpo_loss(logp, OLD_LOGP, ADVANTAGES, empty, aggregation=aggregation)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logp.grad, torch.zeros(2, 3))
    assert all(math.isfinite(v) for v in metrics.values())
    s_loss, _ = sft_loss(_logp(), empty)
    assert s_loss.item() == 0.0 and s_loss.requires_grad


def test_grpo_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        grpo_loss(_logp(), OLD_LOGP, ADVANTAGES[:1], MASK)
    with pytest.raises(ValueError, match="aggregation"):
        grpo_loss(_logp(), OLD_LOGP, ADVANTAGES, MASK, aggregation="sum")
    with pytest.raises(ValueError, match="dual_clip_c"):
        grpo_loss(_logp(), OLD_LOGP, ADVANTAGES, MASK, dual_clip_c=0.5)


def test_group_advantages_by_hand():
    # [1, 0, 0, 1]: mean 0.5, unbiased var 4 * 0.25 / 3 = 1/3, std 0.577350 -> A = +-0.5 / 0.577351 = +-0.866024
    A = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0]]))
    expected = torch.tensor([[0.866024, -0.866024, -0.866024, 0.866024], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(A, expected, atol=1e-5, rtol=0)
    assert torch.equal(group_advantages(torch.tensor([[1.0], [0.0]])), torch.zeros(2, 1))  # n == 1
    assert group_advantages(torch.tensor([[1, 0]])).dtype == torch.float32  # integer rewards


def test_sft_loss_by_hand():
    # tokens p = 0.5, 0.25 (masked in), 0.1 (masked out): plain = (log 2 + log 4) / 2 = 1.039721
    logp = torch.tensor([[0.5, 0.25, 0.1]]).log()
    mask = torch.tensor([[1, 1, 0]])
    loss, metrics = sft_loss(logp, mask)
    assert loss.item() == pytest.approx(1.039721, abs=1e-6)
    # phi = 0.25, 0.1875: (0.25 log 2 + 0.1875 log 4) / 2 = (0.173287 + 0.259930) / 2 = 0.216608,
    # not renormalised by sum(phi)
    loss, metrics = sft_loss(logp, mask, weights=phi(logp))
    assert loss.item() == pytest.approx(0.216608, abs=1e-6)
    assert metrics["sft/nll"] == pytest.approx(1.039721, abs=1e-6)
    assert metrics["sft/weight_mean"] == pytest.approx((0.25 + 0.1875) / 2)


def _linear_policy_logp(W, x, ids):
    """A tiny 'policy': logits = x W^T, x [B, T, D], W [V, D]; logp of ids [B, T]."""
    return torch.log_softmax(x @ W.T, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def test_chord_loss_gradient_is_the_mu_blend():
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(5, 4, generator=gen, requires_grad=True)
    x_rl, x_sft = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 3, 4, generator=gen)
    ids_rl, ids_sft = torch.randint(0, 5, (2, 3), generator=gen), torch.randint(0, 5, (2, 3), generator=gen)
    old_logp = _linear_policy_logp(W, x_rl, ids_rl).detach() + 0.1 * torch.randn(2, 3, generator=gen)

    def losses():
        logp_rl, logp_sft = _linear_policy_logp(W, x_rl, ids_rl), _linear_policy_logp(W, x_sft, ids_sft)
        rl, _ = grpo_loss(logp_rl, old_logp, ADVANTAGES, MASK)
        sft, _ = sft_loss(logp_sft, MASK, weights=phi(logp_sft))
        return rl, sft

    def grad(loss):
        return torch.autograd.grad(loss, W)[0]

    g_rl, g_sft = grad(losses()[0]), grad(losses()[1])
    assert not torch.allclose(g_rl, g_sft)
    torch.testing.assert_close(grad(chord_loss(*losses(), mu=0.0)), g_rl)
    torch.testing.assert_close(grad(chord_loss(*losses(), mu=1.0)), g_sft)
    torch.testing.assert_close(grad(chord_loss(*losses(), mu=0.3)), 0.7 * g_rl + 0.3 * g_sft)
    # an absent side is allowed exactly where its weight is 0
    torch.testing.assert_close(grad(chord_loss(losses()[0], None, mu=0.0)), g_rl)
    torch.testing.assert_close(grad(chord_loss(None, losses()[1], mu=1.0)), g_sft)
    with pytest.raises(ValueError, match="needs"):
        chord_loss(losses()[0], None, mu=0.3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        chord_loss(*losses(), mu=1.5)


def test_phi_weight_carries_no_gradient():
    # grad of token-mean(-logp * phi) must equal sum_t phi_t * grad(-logp_t) / N, phi_t taken as numbers
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(5, 4, generator=gen, requires_grad=True)
    x, ids = torch.randn(1, 3, 4, generator=gen), torch.randint(0, 5, (1, 3), generator=gen)
    mask = torch.ones(1, 3)
    logp = _linear_policy_logp(W, x, ids)
    loss, _ = sft_loss(logp, mask, weights=phi(logp))
    g = torch.autograd.grad(loss, W)[0]
    p = [math.exp(v) for v in logp[0].tolist()]
    manual = sum(
        p_t * (1 - p_t) * torch.autograd.grad(-_linear_policy_logp(W, x, ids)[0, t], W)[0] for t, p_t in enumerate(p)
    ) / 3
    torch.testing.assert_close(g, manual)
    # sanity: letting the gradient flow through phi would give something else
    logp = _linear_policy_logp(W, x, ids)
    p_live = logp.exp()
    g_live = torch.autograd.grad((-logp * p_live * (1 - p_live)).mean(), W)[0]
    assert not torch.allclose(g_live, manual)
