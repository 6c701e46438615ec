"""SFT token weights (trainer/token_weights.py)."""

import math

import pytest
import torch

from chord_env.trainer.token_weights import STATS_NEEDED, TOKEN_WEIGHTS, phi, token_stats, token_weights

# p = 0, tiny, 0.5, 1 (logp = -inf, -1e4, log 0.5, 0)
EXTREME_LOGP = torch.tensor([[-math.inf, -1e4, math.log(0.5), 0.0]])


def test_phi_by_hand():
    torch.testing.assert_close(phi(EXTREME_LOGP), torch.tensor([[0.0, 0.0, 0.25, 0.0]]))


def test_variants_by_hand():
    logp = torch.tensor([[math.log(0.5), math.log(0.05), 0.0]])
    torch.testing.assert_close(token_weights("prob", logp), torch.tensor([[0.5, 0.05, 1.0]]))
    torch.testing.assert_close(token_weights("focal", logp, gamma=2.0), torch.tensor([[0.25, 0.9025, 0.0]]))
    torch.testing.assert_close(token_weights("low_prob", logp, w_max=10.0), torch.tensor([[2.0, 10.0, 1.0]]))
    torch.testing.assert_close(token_weights("none", logp), torch.ones(1, 3))
    margin = torch.tensor([[0.9, 0.0, 0.4]])  # high margin down-weights
    torch.testing.assert_close(token_weights("margin", logp, top2_margin=margin), torch.tensor([[0.1, 1.0, 0.6]]))
    ent = torch.tensor([[0.0, 1.5, 0.3]])
    torch.testing.assert_close(token_weights("entropy", logp, entropy=ent), ent)
    with pytest.raises(ValueError, match="unknown token weight"):
        token_weights("softmax", logp)


@pytest.mark.parametrize("name", sorted(TOKEN_WEIGHTS))
def test_every_weight_is_detached_and_finite_on_extremes(name):
    logp = EXTREME_LOGP.clone().requires_grad_()
    stats = {
        "entropy": torch.tensor([[0.0, 0.0, 0.7, 0.0]], requires_grad=True),
        "top2_margin": torch.tensor([[1.0, 1.0, 0.0, 1.0]], requires_grad=True),
    }
    w = token_weights(name, logp, **{s: stats[s] for s in STATS_NEEDED.get(name, ())})
    assert w.shape == logp.shape and not w.requires_grad and torch.isfinite(w).all() and (w >= 0).all()


def test_token_stats_from_one_log_softmax():
    # V = 4; position 0 uniform: entropy log 4, margin 0; position 1 one-hot-ish with a -inf logit
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, -math.inf, -math.inf, -math.inf]]], requires_grad=True)
    ids = torch.tensor([[2, 0]])
    out = token_stats(logits, ids, stats=("entropy", "top2_margin"))
    torch.testing.assert_close(out["logp"], torch.tensor([[math.log(0.25), 0.0]]))
    torch.testing.assert_close(out["entropy"], torch.tensor([[math.log(4.0), 0.0]]))
    torch.testing.assert_close(out["top2_margin"], torch.tensor([[0.0, 1.0]]))
    assert out["logp"].requires_grad and not out["entropy"].requires_grad and not out["top2_margin"].requires_grad
    assert set(token_stats(logits, ids)) == {"logp"}


def test_phi_distribution_by_hand():
    from chord_env.trainer.token_weights import phi_distribution

    out = phi_distribution(torch.tensor([0.0, 0.005, 0.09, 0.16, 0.25]))
    # linear interpolation between order statistics: q10 sits 0.4 of the way from 0 to 0.005
    assert out["sft/phi_q10"] == pytest.approx(0.002)
    assert out["sft/phi_q50"] == pytest.approx(0.09)
    assert out["sft/phi_q90"] == pytest.approx(0.16 + 0.6 * 0.09)
    assert out["sft/phi_low"] == pytest.approx(2 / 5)
