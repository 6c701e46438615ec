"""Per-token SFT weights w[B, T] for expert tokens.

CHORD-phi (arXiv 2508.11408) weights each expert token's -log p by phi = p (1 - p), where p is the
current policy's probability of that expert token, computed in the same forward pass and DETACHED. phi
damps tokens the policy already knows (p ~ 1) and tokens far off its distribution (p ~ 0), which keeps
SFT from disrupting the policy's habits. The variants beside it are the ones reviewers asked about.

Every weight function takes `logp: [B, T]` (log-probability of the expert token) and returns a detached,
finite `[B, T]` tensor, also for logp = -inf (p = 0) and logp = 0 (p = 1). Weights that need more than
the expert token's probability take per-token statistics that the caller computes in the same chunked
pass over the logits (`token_stats`), so full-vocabulary logits are never materialised twice:
`entropy: [B, T]` (nats) and `top2_margin: [B, T]` (top-1 minus top-2 probability). `STATS_NEEDED`
says which statistics each weight reads, so the loop computes only those.

Deviations from the references: Trinity-RFT computes phi (`sft_phi`) and p (`sft_is`) only; the other
weights are ours (choices stated in each docstring). The learned balance mu lives with the mu
schedules in `trainer/mu.py`.
"""

from typing import Callable

import torch
from torch import Tensor


def _prob(logp: Tensor) -> Tensor:
    """p = exp(logp), detached and clamped to [0, 1] (logp = -inf gives 0)."""
    return torch.exp(logp.detach()).clamp(0.0, 1.0)


def phi(logp: Tensor) -> Tensor:
    """CHORD-phi weight p (1 - p): 0 at p = 0 and p = 1, at most 0.25 at p = 0.5 (Trinity-RFT sft_phi)."""
    p = _prob(logp)
    return p * (1.0 - p)


def prob(logp: Tensor) -> Tensor:
    """Importance-style weight p (Trinity-RFT `sft_is`; the DFT rectification of Wu et al. 2025)."""
    return _prob(logp)


def entropy(logp: Tensor, *, entropy: Tensor) -> Tensor:
    """Weight = entropy (nats) of the policy's token distribution at that position.

    Up-weights positions where the policy is undecided ("forking" tokens, where imitation carries the
    most information) and down-weights confident ones, whether the expert agrees (nothing to learn) or
    not (a firm habit SFT would disrupt). The scale is unnormalised, in [0, log V]: tune mu with it.
    """
    return torch.nan_to_num(entropy.detach(), nan=0.0, posinf=0.0).clamp(min=0.0)


def focal(logp: Tensor, *, gamma: float = 2.0) -> Tensor:
    """Focal weight (1 - p)^gamma (Lin et al. 2017, "Focal Loss"): fades out tokens already learned."""
    return (1.0 - _prob(logp)) ** gamma


def margin(logp: Tensor, *, top2_margin: Tensor) -> Tensor:
    """Weight 1 - m, m = top-1 minus top-2 probability of the policy at that position, in [0, 1].

    High margin DOWN-weights: a large margin means the policy has a firm preference there. If the expert
    token is that preference, there is nothing to learn; if it is not, pushing hard against a firm habit
    is the off-distribution disruption phi guards against. Small margins mark a tie between candidates,
    where the expert's choice is most informative.
    """
    return 1.0 - torch.nan_to_num(top2_margin.detach(), nan=1.0).clamp(0.0, 1.0)


def low_prob(logp: Tensor, *, w_max: float = 10.0) -> Tensor:
    """Low-probability up-weighting: w = min(1 / p, w_max), so w = 1 at p = 1 and w_max for p <= 1/w_max.

    For base models, whose gap to the expert is what SFT should close, the CHORD authors advise
    emphasising low-probability tokens, the opposite of phi. Inverse probability is the natural
    opposite of the p weight (DFT); the clip at w_max (ours, untuned) bounds the gradient at w_max times
    plain SFT's. It never down-weights, so the SFT loss grows: lower mu accordingly.
    """
    return torch.exp(-logp.detach()).clamp(max=w_max)


def none(logp: Tensor) -> Tensor:
    """Plain SFT: w = 1."""
    return torch.ones_like(logp.detach())


TOKEN_WEIGHTS: dict[str, Callable[..., Tensor]] = {
    "phi": phi,
    "prob": prob,
    "entropy": entropy,
    "focal": focal,
    "margin": margin,
    "low_prob": low_prob,
    "none": none,
}
STATS_NEEDED: dict[str, tuple[str, ...]] = {"entropy": ("entropy",), "margin": ("top2_margin",)}


PHI_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def phi_distribution(phis: Tensor) -> dict[str, float]:
    """Summary of phi = p (1 - p) over the expert tokens of one step (`phis`: [N], any N >= 1): its
    quantiles (`sft/phi_q10` ... `sft/phi_q90`) and `sft/phi_low`, the share of tokens with phi < 0.01,
    i.e. p < 0.0101 or p > 0.9899, which CHORD-phi all but silences. Logged whichever token weight
    trains, so plain SFT shows what phi would have done."""
    phis = phis.detach().double().flatten()
    qs = torch.quantile(phis, torch.tensor(PHI_QUANTILES, dtype=torch.float64))
    out = {f"sft/phi_q{round(q * 100)}": float(v) for q, v in zip(PHI_QUANTILES, qs)}
    out["sft/phi_low"] = float((phis < 0.01).double().mean())
    return out


def token_weights(name: str, logp: Tensor, **extra) -> Tensor:
    """Weights w[B, T] of the registered weight `name`; extra: its statistics and parameters."""
    if name not in TOKEN_WEIGHTS:
        raise ValueError(f"unknown token weight {name!r}; choose from {sorted(TOKEN_WEIGHTS)}")
    return TOKEN_WEIGHTS[name](logp, **extra)


def token_stats(logits: Tensor, ids: Tensor, stats: tuple[str, ...] = ()) -> dict[str, Tensor]:
    """From one chunk of logits [b, t, V] and target ids [b, t]: logp [b, t] (with grad) plus the
    requested detached statistics ("entropy", "top2_margin") [b, t], from a single log_softmax.

    The caller loops over chunks of the sequence so that only [b, t, V] is ever held in fp32 (or in
    float64, for a float64 model: the softmax runs in fp32 at least, never below the logits' precision).
    """
    logp_vocab = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # [b, t, V]
    out = {"logp": logp_vocab.gather(-1, ids.unsqueeze(-1)).squeeze(-1)}
    with torch.no_grad():
        p_vocab = logp_vocab.exp()
        if "entropy" in stats:
            out["entropy"] = -torch.special.xlogy(p_vocab, p_vocab).sum(dim=-1)  # 0 log 0 = 0
        if "top2_margin" in stats:
            top2 = p_vocab.topk(2, dim=-1).values  # [b, t, 2]
            out["top2_margin"] = top2[..., 0] - top2[..., 1]
    return out
