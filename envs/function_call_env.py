"""FunctionCallEnv: single-turn function calling, rewarded by matching the ground-truth calls.

The observation is the task's request; `info["tools"]` are the function specs offered (they are not
executed). The action is one assistant turn. Its rubric (`function_call_rubric`) has one term,
`calls_match`: 1.0 when the turn's calls equal the task's expected calls (`task.answer`, a list of
`ToolCall`) as a multiset: same function names and argument values, in any order (parallel calls),
no missing and no extra call; a task with no expected call rewards answering without one
(irrelevance). A turn with a malformed call earns 0.

Matching rules:
- argument values compare by `values_equal`: numbers by value (3 == 3.0; a bool is not a number),
  strings exactly after trimming outer whitespace (case matters), lists in order, dicts by keys;
- a required argument missing, an argument the expected call lacks, or a wrong value fails the call;
- optional parameters with defaults: `task.info["defaults"]` (`{function: {parameter: default}}`)
  lists them; an argument equal to its parameter's default counts as omitted, on both sides, so for
  an optional parameter the request does not state, omitting it and passing its default are both
  right (as in BFCL's possible answers), and any other value is wrong.

How this differs from BFCL's AST checker (`bfcl_eval`'s `ast_checker`, which scores `chord/BFCL-v0`),
given the same ground truth (each expected argument's value; an optional parameter the expected call
omits allowed at its default or omitted). On calls both have decoded, the verdicts are equal except:
- strings: compared exactly here; BFCL ignores case, spaces and the characters `,./-_*^` (and reads
  `'` as `"`), so BFCL also accepts "new york" or "NewYork" for "New York";
- numbers: compared by value here, so 3.0 passes where the schema says `integer` (a parameter or an
  array's items), and within a relative 1e-9; BFCL checks the Python type (refusing 3.0 there; both
  accept an int for a `number` parameter) and compares exactly.
`tests/envs/test_function_call_vs_bfcl.py` checks exactly this on catalogue tasks. Around the
matching, two more differences: a turn with a malformed call earns 0 here, while BFCL drops a call
it cannot decode and scores the rest (so an irrelevance request answered with only a malformed call
passes BFCL); and this env reads calls with the env's parser (`parsing.parse_hermes` for Hermes),
which takes forms BFCL's Hermes decoder drops (`bfcl.decode_hermes`: the JSON must sit on its own
lines between the tags). Training rewards are thus stricter than BFCL on strings and malformed calls,
and more lenient on number types and tag layout.

`info` reports how many expected calls were matched (`matched`, `expected`), any parse error, and
`success` (the task is solved, i.e. reward 1.0).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from chord_env.envs.base import ChatEnv
from chord_env.envs.rewards import Episode, Rubric
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


def calls_match(episode: Episode) -> float:
    """1.0 when the turn parsed and its calls equal the expected ones as a multiset (module docstring);
    leaves `matched` and `expected` in `episode.details`."""
    calls = episode.messages[-1].tool_calls
    expected: list[ToolCall] = list(episode.task.answer or [])
    matched = count_matched(calls, expected, episode.task.info.get("defaults"))
    episode.details.update(matched=matched, expected=len(expected))
    return float(episode.parse_errors == 0 and matched == len(expected) == len(calls))


def function_call_rubric() -> Rubric:
    """One term, `calls_match`."""
    return Rubric({"calls_match": (1.0, calls_match)})


class FunctionCallEnv(ChatEnv):
    """One request, one turn of calls, reward = exact multiset match with the ground truth."""

    def __init__(self, tasks: TaskSource, parser: str = "hermes", system_prompt: str | None = None):
        if parser not in PARSERS:
            raise ValueError(f"unknown parser {parser!r}; choose one of {sorted(PARSERS)}")
        super().__init__(tasks, system_prompt)
        self.parser = parser
        self.rubric = function_call_rubric()

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        self._begin_step(action)
        parsed = PARSERS[self.parser](action)
        reward, info = self._score_turn(action, parsed)
        calls = [{"name": c.name, "arguments": c.arguments} for c in parsed.calls]
        return [], reward, True, False, {"tool_calls": calls, "parse_error": parsed.error, **info}

    def expert_actions(self) -> list[str]:
        return list(self.task.expert) or [FORMATTERS[self.parser](list(self.task.answer or []), "")]
