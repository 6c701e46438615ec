"""FunctionCallEnv: single-turn function calling, rewarded by matching the ground-truth calls.

The observation is the task's request; `info["tools"]` are the function specs offered (they are not
executed). The action is one assistant turn. Reward 1.0 when its calls equal the task's expected
calls (`task.answer`, a list of `ToolCall`) as a multiset: same function names and argument values,
in any order (parallel calls), no missing and no extra call; a task with no expected call rewards
answering without one (irrelevance). Argument values compare by `values_equal`: numbers by value
(3 == 3.0), strings exactly after trimming outer whitespace, lists in order, dicts by keys.
`info` reports how many expected calls were matched and any parse error.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium as gym

from chord_env.envs.spaces import AssistantText, Messages
from chord_env.envs.task import TaskSource, draw_task, opening_messages
from chord_env.parsing import PARSERS, format_hermes
from chord_env.types import ToolCall


def values_equal(a: Any, b: Any) -> bool:
    """Structural equality of argument values, with numbers compared by value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return a == b


def count_matched(predicted: Sequence[ToolCall], expected: Sequence[ToolCall]) -> int:
    """How many expected calls have a distinct equal predicted call (order-free, greedy)."""
    unused = list(predicted)
    matched = 0
    for want in expected:
        for i, got in enumerate(unused):
            if got.name == want.name and values_equal(got.arguments, want.arguments):
                del unused[i]
                matched += 1
                break
    return matched


class FunctionCallEnv(gym.Env[list, str]):
    """One request, one turn of calls, reward = exact multiset match with the ground truth."""

    metadata = {"render_modes": []}

    def __init__(self, tasks: TaskSource, parser: str = "hermes", system_prompt: str | None = None):
        if parser not in PARSERS:
            raise ValueError(f"unknown parser {parser!r}; choose one of {sorted(PARSERS)}")
        if not callable(tasks) and len(tasks) == 0:
            raise ValueError("FunctionCallEnv needs at least one task")
        self._tasks = tasks
        self.parser = parser
        self.system_prompt = system_prompt
        self.action_space = AssistantText()
        self.observation_space = Messages()
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list, dict]:
        super().reset(seed=seed)
        self.task = draw_task(self._tasks, self.np_random, options or {})
        self._done = False
        return opening_messages(self.task, self.system_prompt), {"tools": list(self.task.tools), "task_id": self.task.id}

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        if not isinstance(action, str):
            raise TypeError(f"FunctionCallEnv actions are the assistant's text (str), got {type(action).__name__}")
        if self._done:
            raise RuntimeError("the episode has ended: call reset() before step()")
        self._done = True
        parsed = PARSERS[self.parser](action)
        expected: list[ToolCall] = list(self.task.answer or [])
        matched = count_matched(parsed.calls, expected)
        correct = parsed.error is None and matched == len(expected) == len(parsed.calls)
        info = {
            "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in parsed.calls],
            "parse_error": parsed.error,
            "matched": matched,
            "expected": len(expected),
            "reward_breakdown": {"calls_match": float(correct)},
        }
        return [], float(correct), True, False, info

    def expert_actions(self) -> list[str]:
        return list(self.task.expert) or [format_hermes(list(self.task.answer or []))]
