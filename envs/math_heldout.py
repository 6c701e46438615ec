"""Held-out math problems: procedurally generated from seeds that training never uses.

Seed ranges are the contract: training draws task seeds below `EVAL_SEED_BASE` (10**9) and
evaluation uses `EVAL_SEED_BASE + i`. Each problem comes from its own generator
`np.random.default_rng(seed)`, so problem i is the same whatever the number of problems asked for.
Disjoint seeds do not guarantee disjoint problems: a small problem space (the arithmetic generator
has about 2.8 million) can repeat a training problem by chance, as any procedural split can.

`heldout_math_env` (`chord/ArithmeticHeldOut-v0`) poses these problems in a `MathEnv` with
`MATH_SYSTEM_PROMPT`: the `math` suite of `chord-env eval` plays it through the rollout runner. It
has one split, `held_out`, and refuses any other.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from chord_env.envs.builtin import arithmetic_task
from chord_env.envs.math_env import MathEnv
from chord_env.envs.math_verify_pool import VerifierPool
from chord_env.envs.task import Task

EVAL_SEED_BASE = 10**9
"""Seeds at or above this are reserved for evaluation; training must stay below."""

MATH_SYSTEM_PROMPT = "Solve the problem. Put the final answer in \\boxed{}."


def is_heldout_seed(seed: int) -> bool:
    """Whether `seed` lies in the evaluation range (training code can assert the opposite)."""
    return seed >= EVAL_SEED_BASE


def heldout_math_tasks(
    n: int, generator: Callable[[np.random.Generator], Task] = arithmetic_task, seed_base: int = EVAL_SEED_BASE
) -> list[Task]:
    """`n` problems, problem i drawn by `generator` from seed `seed_base + i` (>= EVAL_SEED_BASE)."""
    if seed_base < EVAL_SEED_BASE:
        raise ValueError(f"held-out seeds start at {EVAL_SEED_BASE}; got seed_base={seed_base}")
    return [generator(np.random.default_rng(seed_base + i)) for i in range(n)]


def heldout_math_env(split: str = "held_out", n: int = 200, verifier: VerifierPool | None = None) -> MathEnv:
    """`chord/ArithmeticHeldOut-v0`: a MathEnv over `heldout_math_tasks(n)` with `MATH_SYSTEM_PROMPT`
    (`verifier`: math-verify's pool, the shared one by default). Held out: `split` must be "held_out"."""
    if split != "held_out":
        raise ValueError(f"the held-out math problems have no {split!r} split, only 'held_out'")
    return MathEnv(heldout_math_tasks(n), system_prompt=MATH_SYSTEM_PROMPT, verifier=verifier)
