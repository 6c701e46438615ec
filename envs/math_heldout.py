"""Held-out math problems: procedurally generated from seeds that training never uses.

Seed ranges are the contract: training draws task seeds below `EVAL_SEED_BASE` (10**9) and
evaluation uses `EVAL_SEED_BASE + i`. Each problem comes from its own generator
`np.random.default_rng(seed)`, so problem i is the same whatever the number of problems asked for.
Disjoint seeds do not guarantee disjoint problems: a small problem space (the arithmetic generator
has about 2.8 million) can repeat a training problem by chance, as any procedural split can.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from chord_env.envs.builtin import arithmetic_task
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
