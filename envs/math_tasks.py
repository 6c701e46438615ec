"""Math tasks from reasoning-gym, each with a worked solution as its expert answer, for `MathEnv`.

Generators: `gsm_symbolic` (grade-school word problems; reasoning-gym ships a step-by-step
solution), `chain_sum` (a chain of additions and subtractions, solved left to right), `gcd`
(Euclid's algorithm, written out) and `lcm` (through the gcd). Every expert answer ends with
`\\boxed{answer}`, which math-verify reads. `math_task(name, seed)` is deterministic per seed.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from chord_env.envs.math_env import MathEnv
from chord_env.envs.task import Task

GENERATORS = ("gsm_symbolic", "chain_sum", "gcd", "lcm")
_TERM = re.compile(r"([+-]?)\s*(\d+)")


def math_task(name: str, seed: int) -> Task:
    """Entry 0 of reasoning-gym's `name` dataset for `seed`, with a worked solution."""
    import reasoning_gym

    entry = reasoning_gym.create_dataset(name, size=1, seed=seed)[0]
    solution = _SOLVERS[name](entry)
    expert = f"{solution}\n\nThe answer is $\\boxed{{{entry['answer']}}}$."
    return Task(prompt=entry["question"], answer=str(entry["answer"]), expert=[expert], id=f"math-{name}-{seed}",
                info={"world": f"math/{name}", "pattern": "math", "seed": seed})


def _gsm(entry: dict[str, Any]) -> str:
    return entry["metadata"]["answer_cot"].strip()


def _chain(entry: dict[str, Any]) -> str:
    terms = [(sign or "+", int(n)) for sign, n in _TERM.findall(entry["metadata"]["expression"])]
    total, lines = terms[0][1] if terms[0][0] == "+" else -terms[0][1], []
    for sign, n in terms[1:]:
        new = total + n if sign == "+" else total - n
        lines.append(f"{total} {sign} {n} = {new}")
        total = new
    return "Working left to right:\n" + "\n".join(lines) if lines else f"The value is {total}."


def _numbers(entry: dict[str, Any]) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", str(entry["metadata"]["numbers"]))]


def _euclid(a: int, b: int) -> list[str]:
    lines = []
    while b:
        lines.append(f"{a} = {a // b} × {b} + {a % b}")
        a, b = b, a % b
    return lines


def _gcd(entry: dict[str, Any]) -> str:
    numbers = _numbers(entry)
    lines, g = [], numbers[0]
    for n in numbers[1:]:
        lines += _euclid(max(g, n), min(g, n))
        g = math.gcd(g, n)
    return "By Euclid's algorithm:\n" + "\n".join(lines) + f"\nThe last non-zero remainder is {g}."


def _lcm(entry: dict[str, Any]) -> str:
    numbers = _numbers(entry)
    lines, value = [], numbers[0]
    for n in numbers[1:]:
        g = math.gcd(value, n)
        lines.append(f"lcm({value}, {n}) = {value} × {n} / gcd({value}, {n}) = {value * n} / {g} = {value * n // g}")
        value = value * n // g
    return "\n".join(lines)


_SOLVERS = {"gsm_symbolic": _gsm, "chain_sum": _chain, "gcd": _gcd, "lcm": _lcm}


def math_task_source(rng: np.random.Generator) -> Task:
    """A procedural source for MathEnv: a random generator and seed."""
    return math_task(GENERATORS[int(rng.integers(len(GENERATORS)))], int(rng.integers(1_000_000)))


def reasoning_gym_env(**kwargs: Any) -> MathEnv:
    """MathEnv over reasoning-gym tasks with worked-solution experts."""
    return MathEnv(tasks=math_task_source, **kwargs)
