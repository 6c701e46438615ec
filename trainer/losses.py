"""CHORD losses: GRPO with a dual-clipped PPO surrogate, token-weighted SFT, and their mu-blend.

CHORD (arXiv 2508.11408) trains on L = (1 - mu) * L_RL + mu * L_SFT. L_RL is computed on on-policy
rollouts only and L_SFT on expert tokens only; the two batches are disjoint and each loss is a mean over
its own tokens, so mu alone sets the balance. Formulas follow the authors' Trinity-RFT
(`trinity/algorithm/policy_loss_fn/chord_policy_loss.py`, `ppo_policy_loss.py`) and the ms-swift port
(`swift/rlhf_trainers/utils.py`); see docs/method.md.

Conventions: B sequences, T tokens; `mask[b, t]` is 1 (or True) where token t of sequence b is one of
the model's own tokens (RL) or an expert response token (SFT), 0 elsewhere (prompt, tool output,
padding). Every normaliser is derived from `mask` here, never passed in: hand-entered normalisers that
drift from the real batch layout are a known pitfall of the references. Values under mask 0 never reach
the loss or its gradient, not even NaN or inf.

Deviations from the references:
- Trinity rescales each micro-batch loss by hand-entered batch sizes (`train_batch_size_usual`, ...);
  here each loss is a plain mean over the masked tokens of the batch it is given. With gradient
  accumulation the training loop must decide how micro-batches are weighted.
- Aggregation is a choice: "token-mean" (the authors, default) or "seq-mean" (ms-swift's default).
- An empty mask gives loss 0 with a (zero) gradient instead of NaN.
- An optional k3 KL penalty to a reference policy (off by default, as in the reference configs).
- Optional truncated importance sampling (TIS) of the policy-gradient term against the rollout
  engine's behaviour logprobs (`tis_weights`), as TRL and verl offer; the references have none.
"""

from typing import Literal

import torch
from torch import Tensor

Aggregation = Literal["token-mean", "seq-mean"]


def masked_token_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x[B, T] over all tokens with mask 1 in the batch; 0 (with grad) when there are none."""
    mask = mask.bool()
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)


def masked_seq_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over sequences that have a masked token of each one's token mean of x[B, T]; 0 if none."""
    mask = mask.bool()
    n_tokens = mask.sum(dim=-1)  # [B]
    seq_means = torch.where(mask, x, 0.0).sum(dim=-1) / n_tokens.clamp(min=1)  # [B]
    has_tokens = n_tokens > 0  # [B]
    return torch.where(has_tokens, seq_means, 0.0).sum() / has_tokens.sum().clamp(min=1)


AGGREGATIONS = {"token-mean": masked_token_mean, "seq-mean": masked_seq_mean}


def group_advantages(rewards: Tensor) -> Tensor:
    """GRPO advantages A = (R - mean) / (std + 1e-6) within each group, unbiased std (docs/method.md).

    rewards: [G, n], the rewards of the n rollouts of each of G prompts. Returns [G, n].
    A group of identical rewards gives A = 0 (std = 0, numerator 0). A group of one rollout (n == 1)
    also gives 0: the unbiased std of one sample is undefined and no baseline can be formed from it.
    """
    rewards = rewards.to(torch.promote_types(rewards.dtype, torch.get_default_dtype()))
    if rewards.shape[-1] == 1:
        return torch.zeros_like(rewards)
    mean = rewards.mean(dim=-1, keepdim=True)  # [G, 1]
    std = rewards.std(dim=-1, keepdim=True, correction=1)  # [G, 1]
    return (rewards - mean) / (std + 1e-6)


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    dual_clip_c: float | None = 3.0,
    aggregation: Aggregation = "token-mean",
    ref_logp: Tensor | None = None,
    kl_coef: float = 0.0,
    behaviour_logp: Tensor | None = None,
    tis_cap: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """GRPO loss: PPO clipped surrogate with dual clip, per-sequence advantages broadcast to tokens.

    logp, old_logp, mask (and ref_logp, behaviour_logp): [B, T]; advantages: [B]. old_logp, advantages,
    ref_logp and behaviour_logp are treated as constants (detached). old_logp are the trainer's own
    logprobs under the weights that produced the rollouts (the proximal policy of decoupled PPO, Hilton
    et al. 2021); behaviour_logp are the rollout engine's. Per token, with r = exp(clamp(logp - old_logp,
    -20, 20)):
        loss_tok = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))
        loss_tok = min(loss_tok, -A c)   where A < 0   (dual clip, Ye et al. 2020; c = dual_clip_c)
        loss_tok = w * loss_tok,  w = min(exp(old_logp - behaviour_logp), tis_cap)   (if tis_cap is set)
    aggregated by `aggregation` over the masked tokens. w is truncated importance sampling (TIS; Yao et
    al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training") against the
    engine/trainer mismatch: the tokens were sampled by the engine, not by the trainer's pi_old. With
    ref_logp, adds kl_coef times the same aggregate of the k3 estimator of KL(pi || pi_ref),
    exp(ref - logp) - (ref - logp) - 1, the GRPO penalty of DeepSeekMath (Shao et al. 2024, eq. 4) after
    Schulman's "Approximating KL Divergence" (2020); as in verl, w weights the policy-gradient term only.
    Returns (loss, metrics); fractions and means in metrics are over the masked tokens.
    """
    if logp.shape != old_logp.shape or logp.shape != mask.shape or advantages.shape != logp.shape[:1]:
        raise ValueError(
            f"grpo_loss wants logp, old_logp, mask of shape [B, T] and advantages [B]; got "
            f"{tuple(logp.shape)}, {tuple(old_logp.shape)}, {tuple(mask.shape)}, {tuple(advantages.shape)}"
        )
    if tis_cap is not None and (behaviour_logp is None or behaviour_logp.shape != logp.shape):
        raise ValueError("tis_cap needs behaviour_logp of the shape of logp [B, T]")
    if tis_cap is not None and not tis_cap > 0:
        raise ValueError(f"tis_cap must be > 0 (or None to disable), got {tis_cap}")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {sorted(AGGREGATIONS)}, got {aggregation!r}")
    if dual_clip_c is not None and dual_clip_c <= 1.0:
        raise ValueError(f"dual_clip_c must be > 1 (or None to disable), got {dual_clip_c}")
    if kl_coef != 0.0 and ref_logp is None:
        raise ValueError("kl_coef != 0 needs ref_logp")
    aggregate = AGGREGATIONS[aggregation]
    mask = mask.bool()
    logp = logp.masked_fill(~mask, 0.0)
    old_logp = old_logp.detach().to(logp.dtype).masked_fill(~mask, 0.0)
    A = advantages.detach()[:, None]  # [B, 1], broadcast over tokens

    log_ratio = torch.clamp(logp - old_logp, -20.0, 20.0)  # [B, T]
    ratio = torch.exp(log_ratio)
    loss_unclipped = -A * ratio
    loss_clipped = -A * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss_tok = torch.maximum(loss_unclipped, loss_clipped)  # [B, T]
    clipped = loss_clipped > loss_unclipped
    dual_clipped = torch.zeros_like(mask)
    if dual_clip_c is not None:
        loss_dual = -A * dual_clip_c  # [B, 1]
        dual_clipped = (A < 0) & (loss_dual < loss_tok)
        loss_tok = torch.where(dual_clipped, loss_dual, loss_tok)
    if tis_cap is not None:
        tis_w, tis_capped = tis_weights(old_logp, behaviour_logp, mask, tis_cap)
        loss_tok = loss_tok * tis_w
    pg_loss = aggregate(loss_tok, mask)
    loss = pg_loss

    with torch.no_grad():
        metrics = {
            "grpo/pg_loss": pg_loss.item(),
            "grpo/clip_frac": masked_token_mean(clipped.float(), mask).item(),
            "grpo/dual_clip_frac": masked_token_mean(dual_clipped.float(), mask).item(),
            # k3 estimate of KL(pi_old || pi) from samples of pi_old: r - 1 - log r >= 0.
            "grpo/approx_kl": masked_token_mean(ratio - 1.0 - log_ratio, mask).item(),
            "grpo/ratio_mean": masked_token_mean(ratio, mask).item(),
        }
        if tis_cap is not None:
            metrics["tis/weight_mean"] = masked_token_mean(tis_w, mask).item()
            metrics["tis/capped_frac"] = masked_token_mean(tis_capped.float(), mask).item()
    if ref_logp is not None:
        log_ref_ratio = torch.clamp(ref_logp.detach().to(logp.dtype).masked_fill(~mask, 0.0) - logp, -20.0, 20.0)
        kl_ref = aggregate(torch.exp(log_ref_ratio) - log_ref_ratio - 1.0, mask)
        loss = loss + kl_coef * kl_ref
        metrics["grpo/kl_ref"] = kl_ref.item()
    metrics["loss/rl"] = loss.item()
    return loss, metrics


def tis_weights(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor, cap: float) -> tuple[Tensor, Tensor]:
    """Truncated importance weights w = min(p_old / p_behaviour, cap) = min(exp(old_logp - behaviour_logp),
    cap) [B, T], detached, 1 under mask 0; and where the cap acted (the untruncated ratio exceeded it).

    The log-ratio is clamped to [-20, 20] before exp (as the PPO ratio is); identical logprobs give
    exactly 1.
    """
    mask = mask.bool()
    with torch.no_grad():
        log_ratio = (old_logp.detach() - behaviour_logp.detach().to(old_logp.dtype)).masked_fill(~mask, 0.0)
        ratio = torch.exp(torch.clamp(log_ratio, -20.0, 20.0))
        return torch.clamp(ratio, max=cap), (ratio > cap) & mask


def sft_loss(logp: Tensor, mask: Tensor, weights: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """SFT loss on expert tokens: token-mean of -logp * w over the masked tokens.

    logp, mask, weights: [B, T]. weights (e.g. phi = p (1 - p) from `token_weights`) are detached and not
    renormalised: CHORD-phi relies on phi <= 0.25 shrinking the SFT gradient (docs/method.md, "SFT
    term and token weights"). weights=None is plain SFT (w = 1). logp must be finite on masked tokens
    (log_softmax of finite logits is).
    """
    if logp.shape != mask.shape or (weights is not None and weights.shape != logp.shape):
        raise ValueError(
            f"sft_loss wants logp, mask, weights of one shape [B, T]; got {tuple(logp.shape)}, "
            f"{tuple(mask.shape)}, {None if weights is None else tuple(weights.shape)}"
        )
    mask = mask.bool()
    logp = logp.masked_fill(~mask, 0.0)
    w = torch.ones_like(logp) if weights is None else weights.detach().masked_fill(~mask, 0.0)
    loss = masked_token_mean(-logp * w, mask)
    with torch.no_grad():
        metrics = {
            "loss/sft": loss.item(),
            "sft/nll": masked_token_mean(-logp, mask).item(),
            "sft/weight_mean": masked_token_mean(w, mask).item(),
        }
    return loss, metrics


def chord_loss(rl_loss: Tensor | None, sft_loss: Tensor | None, mu: float | Tensor) -> Tensor:
    """CHORD objective (1 - mu) * rl_loss + mu * sft_loss (scalars).

    A side whose weight is 0 is left out and may be None: at mu == 0 the training loop skips the SFT
    forward pass (as ms-swift does), at mu == 1 the RL one. A learned mu must be passed detached, so the
    policy objective cannot move it (see `token_weights.LearnedMu`).
    """
    if not 0.0 <= mu <= 1.0:
        raise ValueError(f"mu must lie in [0, 1], got {float(mu)}")
    if (mu < 1.0 and rl_loss is None) or (mu > 0.0 and sft_loss is None):
        raise ValueError(f"mu = {float(mu)} needs rl_loss when mu < 1 and sft_loss when mu > 0")
    if mu == 0.0:
        return rl_loss
    if mu == 1.0:
        return sft_loss
    return (1.0 - mu) * rl_loss + mu * sft_loss
