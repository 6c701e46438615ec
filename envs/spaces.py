"""Gymnasium spaces for language agents: the assistant's text (actions) and chat messages (observations).

`gymnasium.spaces.Text` only admits a fixed character set (alphanumerics by default), which would make
`contains` false for almost any real model output, so these two spaces state their own membership:
- `AssistantText`: any `str` of at most `max_chars` characters.
- `Messages`: a list of `chord_env.types.Message` whose roles are allowed, whose content is a `str`,
  and whose tool calls (assistant only) have a name and a dict of arguments.
Both sample with the space's own seeded generator, so `env.action_space.seed(s)` makes samples
reproducible (the env checker relies on it).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from chord_env.types import ROLES, Message, ToolCall

_SAMPLE_WORDS = ("the", "answer", "is", "42", "<tool_call>", "</tool_call>", "{", "}", '"name"', ":", "ok", "\n")


class AssistantText(spaces.Space[str]):
    """Any string up to `max_chars` characters: what an assistant may say in one turn."""

    def __init__(self, max_chars: int = 1_000_000, seed: int | np.random.Generator | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        self.max_chars = max_chars

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_chars

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        n = int(self.np_random.integers(0, 12))
        words = self.np_random.choice(len(_SAMPLE_WORDS), size=n)
        return " ".join(_SAMPLE_WORDS[i] for i in words)[: self.max_chars]

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"AssistantText(max_chars={self.max_chars})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssistantText) and other.max_chars == self.max_chars


class Messages(spaces.Space[list]):
    """A list of chat messages (the new messages an environment shows the agent)."""

    def __init__(self, roles: Sequence[str] = ROLES, seed: int | np.random.Generator | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; allowed: {ROLES}")
        self.roles = tuple(roles)

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(self._valid_message(m) for m in x)

    def _valid_message(self, m: Any) -> bool:
        if not isinstance(m, Message) or m.role not in self.roles or not isinstance(m.content, str):
            return False
        if m.tool_calls and m.role != "assistant":
            return False
        return all(isinstance(c, ToolCall) and isinstance(c.name, str) and isinstance(c.arguments, dict) for c in m.tool_calls)

    def sample(self, mask: Any = None, probability: Any = None) -> list[Message]:
        role = self.roles[int(self.np_random.integers(len(self.roles)))]
        return [Message(role=role, content=f"sample {int(self.np_random.integers(1000))}")]

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Messages(roles={self.roles})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Messages) and other.roles == self.roles
