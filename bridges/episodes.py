"""What a bridge needs from an env: its tasks as dataset rows, and a conversation in OpenAI chat
format played through it.

A task is named by its reset seed: `task_rows` resets the env with seeds `seed, seed + 1, ...` and
keeps each episode's opening messages and tool specs (OpenAI format) with the seed, so a bridge can
later reset a fresh env with the same seed and get the same task. `assistant_action` turns an
assistant message into the env's action, the assistant's text: a message whose tool calls came back
structured (an endpoint that parses tool calls, TRL's tool loop) is written back in the env's
tool-call format (`chord_env.parsing.FORMATTERS`). `play` steps an env with the assistant turns of
a conversation and returns the env's reward; a conversation that ends before the episode does gets
`truncation_reward`, as the rollout runner gives an episode it cuts (`agents/runner.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import gymnasium as gym

import chord_env
from chord_env.parsing import FORMATTERS
from chord_env.types import ToolCall


@dataclass
class TaskRow:
    """One task of a registered env, as a dataset row."""

    seed: int
    """the reset seed that draws this task"""
    prompt: list[dict[str, Any]]
    """the opening messages, OpenAI chat format"""
    tools: list[dict[str, Any]]
    """the tool specs the episode offers, OpenAI format (`{"type": "function", "function": {...}}`)"""


def task_rows(env_id: str, num_examples: int, seed: int = 0, **env_kwargs: Any) -> list[TaskRow]:
    """The tasks drawn by reset seeds `seed .. seed + num_examples - 1` of `chord_env.make(env_id, **env_kwargs)`."""
    env = chord_env.make(env_id, **env_kwargs)
    try:
        rows = []
        for s in range(seed, seed + num_examples):
            opening, info = env.reset(seed=s)
            rows.append(TaskRow(s, [m.to_openai() for m in opening], [t.to_openai() for t in info.get("tools", [])]))
        return rows
    finally:
        env.close()


def tool_call_format(env: gym.Env) -> str:
    """The tool-call format the env's current episode parses ("hermes" when the env names none)."""
    inner = env.unwrapped
    current = getattr(inner, "current", None)  # MixtureEnv: the member playing this episode
    if current is not None:
        inner = current.unwrapped
    return getattr(inner, "parser", "hermes")


def assistant_action(message: Mapping[str, Any], call_format: str) -> str:
    """An assistant message (OpenAI chat format, as a dict) as the env's action text."""
    content = message.get("content") or ""
    if not isinstance(content, str):  # content parts: keep the text ones
        content = "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    calls = [ToolCall.from_openai(c) for c in message.get("tool_calls") or []]
    return FORMATTERS[call_format](calls, content) if calls else content


def play(env: gym.Env, seed: int, conversation: str | Sequence[Mapping[str, Any]],
         truncation_reward: float = 0.0) -> float:
    """The env's reward for `conversation`: reset `env` with `seed` and step it with each assistant turn
    (a plain string is one assistant turn) until the episode ends; tool and user messages in it are the
    env's to produce and are skipped. `truncation_reward` if the conversation ends first."""
    env.reset(seed=seed)
    if isinstance(conversation, str):
        conversation = [{"role": "assistant", "content": conversation}]
    call_format = tool_call_format(env)
    for message in conversation:
        if message.get("role") != "assistant":
            continue
        _, reward, terminated, truncated, _ = env.step(assistant_action(message, call_format))
        if terminated or truncated:
            return float(reward)
    return truncation_reward
