"""`chord-env bench envs`: what the environment layer costs, as ratios against baselines in one run.

1. Step overhead: a scripted ToolEnv episode whose every turn calls a no-op tool, against calling the
   same function directly the same number of times; reported as microseconds of env overhead per
   step (target < 100), for a tool on the worker thread (the default, with a timeout) and inline.
2. Parser throughput: messages parsed per second for each tool-call format (a typical 2-call turn).
3. math-verify: answers checked per second with 2 worker processes against 1 (target >= 1.7x).
Every timing is the best of several repeats (these machines are noisy).
"""

from __future__ import annotations

import time
from typing import Callable

from tqdm import tqdm

from chord_env.envs.math_verify_pool import VerifierPool
from chord_env.envs.task import Task
from chord_env.envs.tool_env import ToolEnv
from chord_env.parsing import PARSERS, format_hermes, format_json, format_pythonic
from chord_env.tools import tool
from chord_env.types import ToolCall


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of `repeats` timed calls of `fn`, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def noop(x: int) -> str:
    """Do nothing.

    Args:
        x: any integer.
    """
    return "ok"


def step_overhead_us(steps: int, repeats: int, timeout: float | None) -> tuple[float, float]:
    """(env steps per second, env overhead in microseconds per step) for a no-op tool."""
    noop_tool = tool(timeout=timeout)(noop)
    call = format_hermes([ToolCall("noop", {"x": 1})])
    task = Task(prompt="Call noop until told otherwise.", expert=[call] * steps + ["done"])
    env = ToolEnv(tools=[noop_tool], tasks=[task], max_turns=steps + 1)

    def episode() -> None:
        env.reset(seed=0)
        for action in task.expert:
            env.step(action)

    def direct() -> None:
        for _ in range(steps + 1):
            noop(x=1)

    t_env, t_direct = best_of(repeats, episode), best_of(repeats, direct)
    return (steps + 1) / t_env, (t_env - t_direct) / (steps + 1) * 1e6


def parser_throughput(n: int, repeats: int) -> dict[str, float]:
    """Messages per second for each parser on a two-call turn with some prose."""
    calls = [ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}), ToolCall("convert", {"amount": 12.5, "to": ["EUR", "USD"]})]
    texts = {
        "hermes": format_hermes(calls, content="Let me look both up."),
        "json": format_json(calls),
        "pythonic": format_pythonic(calls),
    }
    rates = {}
    for name, text in texts.items():
        parse = PARSERS[name]
        assert parse(text).calls == calls, f"{name} parser failed on its own format"
        rates[name] = n / best_of(repeats, lambda: [parse(text) for _ in range(n)])
    return rates


def math_verify_scaling(n: int, repeats: int) -> tuple[float, float]:
    """(answers/s with 1 process, answers/s with 2 processes) on `n` mixed right/wrong answers."""
    pairs = [(str(i * 7), f"The result is $\\boxed{{{i * 7 + (i % 3 == 0)}}}$") for i in range(n)]
    rates = []
    for processes in (1, 2):
        pool = VerifierPool(processes=processes, timeout=30.0)
        pool.score_many(pairs[: 4 * processes])  # start the workers and import math-verify outside the timing
        rates.append(n / best_of(repeats, lambda: pool.score_many(pairs)))
        pool.close()
    return rates[0], rates[1]


def main(quick: bool = False) -> int:
    steps, repeats, n_parse, n_math = (50, 2, 200, 200) if quick else (500, 5, 5000, 2000)
    with tqdm(total=4, desc="bench envs", unit="part") as bar:
        worker_rate, worker_us = step_overhead_us(steps, repeats, timeout=10.0)
        bar.update()
        inline_rate, inline_us = step_overhead_us(steps, repeats, timeout=None)
        bar.update()
        parse_rates = parser_throughput(n_parse, repeats)
        bar.update()
        one, two = math_verify_scaling(n_math, max(1, repeats // 2))
        bar.update()
    print("\n| measurement | value | target |\n|---|---|---|")
    print(f"| ToolEnv steps/s, no-op tool on worker thread | {worker_rate:,.0f} | |")
    print(f"| env overhead per step, worker thread (us) | {worker_us:.1f} | < 100 |")
    print(f"| ToolEnv steps/s, no-op tool inline | {inline_rate:,.0f} | |")
    print(f"| env overhead per step, inline (us) | {inline_us:.1f} | < 100 |")
    for name, rate in parse_rates.items():
        print(f"| {name} parser, 2-call messages/s | {rate:,.0f} | |")
    print(f"| math-verify answers/s, 1 process | {one:,.0f} | |")
    print(f"| math-verify answers/s, 2 processes | {two:,.0f} | |")
    print(f"| math-verify speed-up, 2 vs 1 processes | {two / one:.2f}x | >= 1.7x |")
    return 0
