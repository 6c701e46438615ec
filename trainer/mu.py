"""mu, the weight of the SFT loss in CHORD: schedules (pure functions of the optimizer step) and the
exploratory learned balance `LearnedMu`.

mu changes per optimizer step and stays constant across the gradient-accumulation micro-steps of one
step (docs/method.md, "mu schedules"). `chord_mu` is the authors' schedule (Trinity-RFT
`mu_schedule_function`): linear warmup from 0 to `peak` over W steps, cosine decay to `valley` over D
steps, then `valley`. Note that it starts at 0 when W > 0, and that W = D = 0 gives the constant
`valley` (CHORD-phi uses peak = valley = 0.1).

`MuSchedule` is what a YAML config maps onto, e.g. `{kind: chord, warmup_steps: 0, decay_steps: 200,
peak: 0.9, valley: 0.05}` (CHORD-mu, math). It rejects missing and irrelevant fields, so a saved config
states exactly the schedule that ran. Deviation from the reference: parameters are validated (negative
steps, mu outside [0, 1]) with a ValueError instead of being trusted.
"""

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def _check(step: int, mus: dict[str, float], lengths: dict[str, int]) -> None:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    for name, value in mus.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} is a value of mu and must lie in [0, 1], got {value}")
    for name, value in lengths.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def constant(step: int, value: float) -> float:
    """mu = value at every step."""
    _check(step, {"value": value}, {})
    return value


def linear(step: int, start: float, end: float, steps: int) -> float:
    """mu from `start` at step 0 to `end` at step `steps`, linearly; `end` afterwards (steps = 0: end)."""
    _check(step, {"start": start, "end": end}, {"steps": steps})
    if step >= steps:
        return end
    return start + (end - start) * step / steps


def cosine(step: int, start: float, end: float, steps: int) -> float:
    """mu from `start` at step 0 to `end` at step `steps` along half a cosine; `end` afterwards."""
    _check(step, {"start": start, "end": end}, {"steps": steps})
    if step >= steps:
        return end
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * step / steps))


def chord_mu(step: int, warmup_steps: int, decay_steps: int, peak: float, valley: float) -> float:
    """The CHORD schedule exactly as Trinity-RFT (docs/method.md; W = warmup_steps, D = decay_steps):
    step < W: peak * step / W;  step >= W + D: valley;  else valley + (peak - valley) * 0.5 * (1 +
    cos(pi * (step - W) / D)).
    """
    _check(step, {"peak": peak, "valley": valley}, {"warmup_steps": warmup_steps, "decay_steps": decay_steps})
    W, D = warmup_steps, decay_steps
    if step < W:
        return peak * step / W
    if step >= W + D:
        return valley
    return valley + (peak - valley) * 0.5 * (1.0 + math.cos(math.pi * (step - W) / D))


def sft_warmup(step: int, hold_steps: int, decay_steps: int, peak: float, valley: float) -> float:
    """Ours, for a cold start (a policy that never writes the expert's format, so RL has no reward to
    learn from yet): mu = 1 (pure SFT, no rollouts) for `hold_steps` steps, then the CHORD cosine from
    `peak` to `valley` over `decay_steps` steps, then `valley`."""
    _check(step, {"peak": peak, "valley": valley}, {"hold_steps": hold_steps, "decay_steps": decay_steps})
    if step < hold_steps:
        return 1.0
    return chord_mu(step - hold_steps, 0, decay_steps, peak, valley)


def switch(step: int, before: float, after: float, at: int) -> float:
    """mu = before for step < at, then after (SFT then GRPO: before = 1, after = 0)."""
    _check(step, {"before": before, "after": after}, {"at": at})
    return before if step < at else after


SCHEDULES = {"constant": constant, "linear": linear, "cosine": cosine, "chord": chord_mu, "sft-warmup": sft_warmup, "switch": switch}
PARAMS = {
    "constant": ("value",),
    "linear": ("start", "end", "steps"),
    "cosine": ("start", "end", "steps"),
    "chord": ("warmup_steps", "decay_steps", "peak", "valley"),
    "sft-warmup": ("hold_steps", "decay_steps", "peak", "valley"),
    "switch": ("before", "after", "at"),
}


@dataclass(frozen=True)
class MuSchedule:
    """A mu schedule from config: `kind` picks the function, and exactly its parameters must be set."""

    kind: str
    """one of "constant", "linear", "cosine", "chord" (the authors' warmup-then-cosine), "sft-warmup" (pure
    SFT, then the chord cosine), "switch" (a step)"""
    value: float | None = None
    """constant: mu"""
    start: float | None = None
    """linear, cosine: mu at step 0"""
    end: float | None = None
    """linear, cosine: mu from step `steps` on"""
    steps: int | None = None
    """linear, cosine: length of the ramp in optimizer steps"""
    warmup_steps: int | None = None
    """chord: W, linear warmup from 0 to peak"""
    hold_steps: int | None = None
    """sft-warmup: steps of pure SFT (mu = 1) before the decay"""
    decay_steps: int | None = None
    """chord, sft-warmup: D, cosine decay from peak to valley"""
    peak: float | None = None
    """chord: mu at the end of warmup; sft-warmup: mu right after the hold"""
    valley: float | None = None
    """chord, sft-warmup: mu after the decay"""
    before: float | None = None
    """switch: mu for steps < at"""
    after: float | None = None
    """switch: mu from step `at` on"""
    at: int | None = None
    """switch: the first step of `after`"""

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown mu schedule kind {self.kind!r}; choose from {sorted(SCHEDULES)}")
        wanted = PARAMS[self.kind]
        params = [f.name for f in dataclasses.fields(self) if f.name != "kind"]
        set_fields = {name for name in params if getattr(self, name) is not None}
        if missing := [name for name in wanted if name not in set_fields]:
            raise ValueError(f"mu schedule {self.kind!r} needs {missing}")
        if extra := sorted(set_fields - set(wanted)):
            raise ValueError(f"mu schedule {self.kind!r} does not take {extra}; it takes {list(wanted)}")
        self(0)  # validates the values now, not at the first training step

    def __call__(self, step: int) -> float:
        return SCHEDULES[self.kind](step, **{name: getattr(self, name) for name in PARAMS[self.kind]})


class LearnedMu(nn.Module):
    """EXPLORATORY VARIANT, not CHORD: a learned balance mu = sigmoid(theta) between L_RL and L_SFT,
    fitted so that SFT carries a fixed share of the blended gradient.

    CHORD moves from imitation to exploration: the expert term teaches while on-policy RL cannot, then
    hands over, and phi damps the expert tokens the policy already knows or finds far off. Matching
    gradient norms works against all three (docs/method.md, "SFT term and token weights"):
    - when RL has no signal (every group's rewards equal, so A = 0 and g_rl = 0, as on a cold start),
      the target is mu_min: mu falls exactly when the expert term is the only teacher;
    - phi shrinks g_sft (w <= 0.25), and mu's odds mu / (1 - mu) grow by the same factor: SFT's share
      of the blend is `target_share` whatever phi does, so phi's damping is undone;
    - as the policy learns the expert's tokens (p -> 1, so g_sft -> 0) while RL still has signal, mu
      climbs to mu_max: imitation gains weight when CHORD would hand over to exploration.
    It is a variant to compare against (configs/chord-learned-mu.yaml), not a way to run CHORD.

    Objective (ours; in the spirit of GradNorm, Chen et al. 2018): choose mu so that SFT's share of the
    blended gradient, mu g_sft / ((1 - mu) g_rl + mu g_sft), equals `target_share`, where g_rl and g_sft
    are the norms of the gradients of L_RL and L_SFT before mu (L_SFT with its token weights) on the
    same parameters (all of them, or a cheap proxy such as the output layer). The solution is
    theta* = logit(target_share) + log(g_rl / g_sft), and `balance_loss` = (theta - theta*)^2, so a step
    of SGD with lr eta (`learned_mu_lr` in the config, in (0, 0.5]) moves theta a fraction 2 eta of the
    way to theta*: a smoothed, learned mu. The policy loss takes mu detached.

    Why not the suggested alternatives: Kendall et al. (2018) uncertainty weighting, exp(-s) L + s,
    needs L >= 0 (a likelihood); the GRPO surrogate is often negative, and then s -> -inf. Training
    mu on the CHORD loss itself moves mu towards whichever loss value is smaller, a trivial collapse.

    No collapse: mu = sigmoid(theta) is never exactly 0 or 1; theta* is finite and clamped to
    [logit(mu_min), logit(mu_max)], so mu stays inside whatever the gradient norms are (a zero SFT
    gradient, e.g. all phi = 0, would otherwise drive mu to 1); and the objective is a parabola in
    theta, whose gradient does not vanish as mu nears 0 or 1 (unlike a loss on mu itself).
    """

    def __init__(self, mu_init: float = 0.1, target_share: float = 0.5, mu_min: float = 0.01, mu_max: float = 0.99):
        super().__init__()
        if not 0.0 < mu_min <= mu_init <= mu_max < 1.0 or not 0.0 < target_share < 1.0:
            raise ValueError("need 0 < mu_min <= mu_init <= mu_max < 1 and 0 < target_share < 1")
        self.target_share, self.mu_min, self.mu_max = target_share, mu_min, mu_max
        self.theta = nn.Parameter(torch.tensor(_logit(mu_init)))

    def forward(self) -> Tensor:
        """mu, a scalar tensor (pass `mu.detach()` or `float(mu)` to `chord_loss`)."""
        return torch.sigmoid(self.theta)

    def balance_loss(self, g_rl: float, g_sft: float) -> Tensor:
        """(theta - theta*)^2 for gradient norms g_rl, g_sft >= 0 (floats, measured by the loop)."""
        log_ratio = math.log(max(g_rl, 1e-12)) - math.log(max(g_sft, 1e-12))
        theta_star = min(max(_logit(self.target_share) + log_ratio, _logit(self.mu_min)), _logit(self.mu_max))
        return (self.theta - theta_star) ** 2


def _logit(x: float) -> float:
    return math.log(x / (1.0 - x))
