"""Tool-world environments (`chord/World-<Name>-v0`, `chord/Worlds-v0`): ToolEnv over world tasks.

Each episode builds fresh worlds from the task (`world_tools`), plays the scripted user
(`scripted_user`: the task's follow-up messages, one per final message of the agent, so a question
gets the user's answer and a finished request gets the next one), and scores with `world_rubric`:

- `state` (weight 1.0): over the state paths that the expert's solution changes or the agent
  changed, the share the agent left exactly as the solution does (1.0 when neither changed
  anything). Extra side effects and missing ones both cost.
- `answer` (1.0): the share of the task's facts stated in the agent's final messages (strings
  case-insensitively, numbers by value to 0.01; 1.0 for a task without facts).
- `protocol` (0.5): the pattern's rule: `no_tool` tasks make no call; `ask_user` tasks ask before
  any call; with `distractors` offered, the share of calls that went to the task's own world.
  Other patterns score 1.0.
- `format` (0.1): `format_ok`, the share of turns without parse errors or invalid calls.

The expert earns the maximum, `MAX_REWARD` = 2.6 (a test replays thousands of tasks).
"""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Any, Sequence

import numpy as np

from chord_env.envs.rewards import Episode, Rubric, format_ok
from chord_env.envs.task import Task
from chord_env.envs.tool_env import ToolEnv
from chord_env.envs.world_tasks import build_worlds, flatten, world_task
from chord_env.tools import Tool
from chord_env.tools.worlds import TRAIN_WORLDS, World
from chord_env.types import Message

MAX_REWARD = 2.6
SYSTEM_PROMPT = ("You are a helpful assistant with access to tools. Call tools when they help; if a required "
                 "detail is missing, ask the user; if no tool fits, answer directly.")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def world_tools(task: Task) -> list[Tool]:
    """Fresh tools for a task: its world's (and any distractor worlds'), in the task's schema style."""
    return [t for w in build_worlds(task.info) for t in w.tools(task.info["schema_style"])]


def scripted_user(task: Task, messages: Sequence[Message]) -> str | None:
    """The user's next message after the agent's final message: the task's next follow-up, if any."""
    prompt = task.prompt if isinstance(task.prompt, list) else [Message("user", task.prompt)]
    replies = sum(m.role == "user" for m in messages) - sum(m.role == "user" for m in prompt)
    followups = task.info.get("followups", [])
    return followups[replies] if replies < len(followups) else None


def _world(episode: Episode) -> World:
    for t in episode.tools.values():
        owner = getattr(t.fn, "__self__", None)
        if isinstance(owner, World) and owner.name == episode.task.info["world"]:
            return owner
    raise LookupError("the episode has no tool of the task's world")


def state_match(episode: Episode) -> float:
    """Share of changed state paths that match the expert's final state."""
    expect = episode.task.info["expect"]
    before = flatten(episode.task.info["state"])
    expected = {p: v for p, v in before.items() if p not in set(expect["removed"])} | expect["set"]
    actual = flatten(_world(episode).snapshot())
    changed = {p for p in expected.keys() | actual.keys() | before.keys()
               if expected.get(p) != before.get(p) or actual.get(p) != before.get(p)}
    if not changed:
        return 1.0
    return sum(actual.get(p) == expected.get(p) for p in changed) / len(changed)


def _finals(episode: Episode) -> str:
    return "\n".join(m.content for m in episode.messages if m.role == "assistant" and not m.tool_calls)


def _stated(fact: str | float, text: str) -> bool:
    if isinstance(fact, str):
        return fact.lower() in text.lower()
    return any(math.isclose(float(n.replace(",", "")), fact, abs_tol=0.01) for n in _NUMBER.findall(text))


def answer_facts(episode: Episode) -> float:
    """Share of the task's facts stated in the agent's final messages."""
    facts = episode.task.info["facts"]
    text = _finals(episode)
    return sum(_stated(f, text) for f in facts) / len(facts) if facts else 1.0


def protocol(episode: Episode) -> float:
    """The pattern's rule about when (and which) tools to call."""
    pattern = episode.task.info["pattern"]
    turns = [m for m in episode.messages if m.role == "assistant"]
    calls = [c for m in turns for c in m.tool_calls]
    if pattern == "no_tool":
        return float(not calls)
    if pattern == "ask_user":
        return float(bool(turns) and not turns[0].tool_calls)
    if pattern == "distractors" and calls:
        own = {t.name for t in _world(episode).tools()}
        return sum(c.name in own for c in calls) / len(calls)
    return 1.0


def world_rubric() -> Rubric:
    return Rubric({"state": (1.0, state_match), "answer": (1.0, answer_facts), "protocol": (0.5, protocol),
                   "format": (0.1, format_ok)})


def world_task_source(worlds: Sequence[str], seed_start: int = 0) -> Any:
    """A procedural task source: each draw picks a world and a seed from `seed_start` on."""
    names = list(worlds)

    def draw(rng: np.random.Generator) -> Task:
        return world_task(names[int(rng.integers(len(names)))], seed_start + int(rng.integers(1_000_000)))

    return draw


def world_env(worlds: str | Sequence[str] = TRAIN_WORLDS, parser: str = "hermes", max_turns: int = 12, **kwargs: Any) -> ToolEnv:
    """A ToolEnv over the tasks of one world (a name) or several (a list of names)."""
    names = [worlds] if isinstance(worlds, str) else list(worlds)
    return ToolEnv(tools=world_tools, tasks=world_task_source(names), rubric=world_rubric(), parser=parser,
                   system_prompt=kwargs.pop("system_prompt", SYSTEM_PROMPT), max_turns=max_turns, user=scripted_user, **kwargs)


calendar_env = partial(world_env, "calendar")
bank_env = partial(world_env, "bank")
shop_env = partial(world_env, "shop")
files_env = partial(world_env, "files")
contacts_env = partial(world_env, "contacts")
converter_env = partial(world_env, "converter")
home_env = partial(world_env, "home")
travel_env = partial(world_env, "travel")
