"""Reward functions for chord-env episodes: small functions, combined with weights, each reported.

A reward function takes the finished `Episode` and returns a float (conventionally in [0, 1]).
`Rubric` sums weighted terms and returns the total plus a per-term breakdown that the environment
puts in `info["reward_breakdown"]`. A term that raises scores 0 and its error is reported in
`info["reward_errors"]`: a buggy reward never crashes a rollout, and never passes silently.

A rubric also says whether the episode *succeeded* (`Rubric.succeeded`, reported as
`info["success"]`): its own `success` predicate over the episode and the breakdown when given,
else the `answer` term is full when the rubric has one, else every term is full. Success is the
yes/no outcome to report (success rates); the weighted total is the shaped training signal.

Every chord-env env scores this way (`Rubric.score` gives the reward and the final step's info), so
a training reward and an evaluation verdict are the same function of the episode. A term may leave
what it found beside its score in `episode.details` (BFCL's verdict, the matched calls); the env
reports those entries in the final step's info.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from chord_env.tools import Tool, ToolResult
from chord_env.envs.task import Task
from chord_env.types import Message

log = logging.getLogger(__name__)


@dataclass
class Episode:
    """Everything a reward function may look at once an episode has ended."""

    task: Task
    messages: list[Message]
    final_answer: str | None
    tool_results: list[ToolResult]
    parse_errors: int
    turns: int
    tools: dict[str, Tool]
    truncation: str | None
    actions: list[str] = field(default_factory=list)
    """The assistant's raw texts, one per turn, as `step` received them."""
    details: dict[str, Any] = field(default_factory=dict)
    """Env-specific facts for the terms (BFCL multi-turn's decoded calls) and what the terms found
    beside their scores (BFCL's verdict); reported in the final step's info."""


RewardFn = Callable[[Episode], float]
SuccessFn = Callable[[Episode, dict[str, float]], bool]


@dataclass
class Rubric:
    """Weighted sum of named reward functions, and the rule for a solved episode."""

    terms: dict[str, tuple[float, RewardFn]]
    success: SuccessFn | None = None

    @property
    def maximum(self) -> float:
        """The total when every term scores 1.0 (terms are conventionally in [0, 1])."""
        return sum(weight for weight, _ in self.terms.values() if weight > 0)

    @property
    def bounds(self) -> tuple[float, float]:
        """The lowest and highest total for terms in [0, 1]: the sum of the negative weights, `maximum`."""
        return sum(min(weight, 0.0) for weight, _ in self.terms.values()), self.maximum

    def succeeded(self, episode: Episode, breakdown: dict[str, float]) -> bool:
        """`success(episode, breakdown)` if given, else the answer term (or, lacking one, every term) is full."""
        if self.success is not None:
            return bool(self.success(episode, breakdown))
        names = ["answer"] if "answer" in breakdown else list(breakdown)
        return all(breakdown[name] >= 1.0 for name in names)

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float], list[str]]:
        total, breakdown, errors = 0.0, {}, []
        for name, (weight, fn) in self.terms.items():
            try:
                value = float(fn(episode))
                if math.isnan(value):
                    raise ValueError("returned NaN")
            except Exception as e:  # a user's reward function may fail in any way
                log.warning("reward term %r failed: %s: %s", name, type(e).__name__, e)
                errors.append(f"{name}: {type(e).__name__}: {e}")
                value = 0.0
            breakdown[name] = value
            total += weight * value
        return total, breakdown, errors

    def score(self, episode: Episode, finished: bool = True) -> tuple[float, dict[str, Any]]:
        """The episode's reward and its final step's info: the terms' `details`, `reward_breakdown`,
        `reward_errors` and `success` (the episode `finished` without truncation, no term failed, and
        `succeeded`)."""
        reward, breakdown, errors = self(episode)
        success = finished and not errors and self.succeeded(episode, breakdown)
        return reward, {**episode.details, "reward_breakdown": breakdown, "reward_errors": errors, "success": success}


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def answer_match(episode: Episode) -> float:
    """1 if the final answer states the task's answer: numbers compare with a 1e-6 relative
    tolerance against the last number in the answer, strings case- and space-insensitively."""
    if episode.final_answer is None or episode.task.answer is None:
        return 0.0
    expected = episode.task.answer
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        got = _last_number(episode.final_answer)
        return float(got is not None and math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9))
    norm = lambda s: " ".join(str(s).lower().split())  # noqa: E731
    return float(norm(expected) in norm(episode.final_answer))


def format_ok(episode: Episode) -> float:
    """Share of the agent's turns that parsed and whose calls named real tools with valid arguments."""
    if episode.turns == 0:
        return 0.0
    bad_calls = sum(r.error in ("unknown_tool", "invalid_arguments") for r in episode.tool_results)
    return max(0.0, 1.0 - (episode.parse_errors + bad_calls) / episode.turns)


def default_rubric() -> Rubric:
    """The final answer carries the reward; clean tool-call format adds a small bonus."""
    return Rubric({"answer": (1.0, answer_match), "format": (0.1, format_ok)})
