"""FunctionCallEnv: single-turn function calling, rewarded by matching the ground-truth calls.

The observation is the task's request; `info["tools"]` are the function specs offered (they are not
executed). The action is one assistant turn. Reward 1.0 when its calls equal the task's expected
calls (`task.answer`, a list of `ToolCall`) as a multiset: same function names and argument values,
in any order (parallel calls), no missing and no extra call; a task with no expected call rewards
answering without one (irrelevance). A turn with a malformed call earns 0.

Matching rules:
- argument values compare by `values_equal`: numbers by value (3 == 3.0; a bool is not a number),
  strings exactly after trimming outer whitespace (case matters), lists in order, dicts by keys;
- a required argument missing, an argument the expected call lacks, or a wrong value fails the call;
- optional parameters with defaults: `task.info["defaults"]` (`{function: {parameter: default}}`)
  lists them; an argument equal to its parameter's default counts as omitted, on both sides, so for
  an optional parameter the request does not state, omitting it and passing its default are both
  right (as in BFCL's possible answers), and any other value is wrong.

`info` reports how many expected calls were matched, any parse error, and `success` (the task is
solved, i.e. reward 1.0).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from chord_env.envs.base import ChatEnv
from chord_env.envs.task import TaskSource
from chord_env.parsing import FORMATTERS, PARSERS
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


def without_defaults(call: ToolCall, defaults: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """The call's arguments less those equal to their parameter's default (`defaults[call.name]`)."""
    own = (defaults or {}).get(call.name) or {}
    return {k: v for k, v in call.arguments.items() if not (k in own and values_equal(v, own[k]))}


def count_matched(predicted: Sequence[ToolCall], expected: Sequence[ToolCall],
                  defaults: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """How many expected calls have a distinct equal predicted call (order-free, greedy); arguments
    equal to their default (per `defaults`, see the module docstring) count as omitted."""
    unused = list(predicted)
    matched = 0
    for want in expected:
        wanted = without_defaults(want, defaults)
        for i, got in enumerate(unused):
            if got.name == want.name and values_equal(without_defaults(got, defaults), wanted):
                del unused[i]
                matched += 1
                break
    return matched


class FunctionCallEnv(ChatEnv):
    """One request, one turn of calls, reward = exact multiset match with the ground truth."""

    def __init__(self, tasks: TaskSource, parser: str = "hermes", system_prompt: str | None = None):
        if parser not in PARSERS:
            raise ValueError(f"unknown parser {parser!r}; choose one of {sorted(PARSERS)}")
        super().__init__(tasks, system_prompt)
        self.parser = parser

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        self._begin_step(action)
        self._done = True
        parsed = PARSERS[self.parser](action)
        expected: list[ToolCall] = list(self.task.answer or [])
        matched = count_matched(parsed.calls, expected, self.task.info.get("defaults"))
        correct = parsed.error is None and matched == len(expected) == len(parsed.calls)
        info = {
            "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in parsed.calls],
            "parse_error": parsed.error,
            "matched": matched,
            "expected": len(expected),
            "success": bool(correct),
            "reward_breakdown": {"calls_match": float(correct)},
        }
        return [], float(correct), True, False, info

    def expert_actions(self) -> list[str]:
        return list(self.task.expert) or [FORMATTERS[self.parser](list(self.task.answer or []), "")]
