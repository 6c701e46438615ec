"""Tool-world environments (`chord/World-<Name>-v0`, `chord/Worlds-v0`): ToolEnv over world tasks.

Each episode builds fresh worlds from the task (`world_tools`), plays the scripted user
(`scripted_user`: the task's follow-up messages, one per final message of the agent, so a question
gets the user's answer and a finished request gets the next one), and scores with `world_rubric`.

Splits (`world_env(split=...)`, also `chord_env.make(id, split=...)`; see `envs.splits`): the
reset seed draws a task from its split only: `train` (training worlds, `TRAIN_SEEDS`),
`validation` (training worlds, `VALIDATION_SEEDS`) or `held_out` (the `HELD_OUT` worlds,
`HELD_OUT_SEEDS`); the task is a deterministic function of (split, worlds, reset seed). A one-world
env defaults to its world's split (`train` for a training world, `held_out` for a held-out one) and
refuses a split that does not hold its world, so a held-out world never yields a training task.

Reward, in [0, 1] (the expert earns `MAX_REWARD` = 1.0; a test replays thousands of tasks):

- `state` (weight 0.4): over the state paths that the expert's solution changes or the agent
  changed, the share the agent left exactly as the solution does. Extra side effects and missing
  ones both cost. When neither changed anything (a lookup, a `no_tool` task) it is `work`, below:
  leaving the state alone is only worth something when the agent did what the task needs.
- `answer` (0.4): the share of the task's facts stated in the agent's final messages (strings
  case-insensitively, numbers by value to 0.01), times `work`. A `no_tool` task has no facts: its
  answer is the decline, which `work` measures.
- `protocol` (0.15): the pattern's rule, times `work`: `no_tool` tasks make no call; `ask_user`
  tasks ask before any call; with `distractors` offered, the share of calls that went to the task's
  own world. Other patterns have no rule (1.0).
- `format` (0.05): `format_ok`, the share of turns without parse errors or invalid calls. This is
  the only credit an episode earns without doing the task's work ("the format credit").

`work` is the share of what the task needs that the agent did: for a task whose expert calls tools,
the share of the expert's calls (by tool name, counted with multiplicity) matched by calls of the
agent that succeeded; for a `no_tool` task, 1.0 if the agent's final messages decline (say it
cannot do that: "can't", "can only", "no way", ...), else 0. So a reply without a tool call
(or random text) on a task whose expert calls tools scores exactly the format credit, and no
partial credit is paid for facts copied from the request or for a protocol kept by doing nothing.

`info["success"]` (final step): the task is solved: the final state equals the expert's on every
path the expert or the agent changed, every fact is stated, the pattern's protocol is kept, and
`work` is full (every call the expert makes was made and succeeded; a `no_tool` reply declines),
i.e. `state`, `answer` and `protocol` all score 1.0 (and the episode ended without truncation).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np

from chord_env.envs.rewards import Episode, Rubric, format_ok
from chord_env.envs.splits import SPLITS, TRAIN_SEEDS
from chord_env.envs.task import Task
from chord_env.envs.tool_env import ToolEnv
from chord_env.envs.world_tasks import build_worlds, flatten, world_task
from chord_env.tools import Tool
from chord_env.tools.worlds import HELD_OUT, World
from chord_env.types import Message

MAX_REWARD = 1.0
WEIGHTS = {"state": 0.4, "answer": 0.4, "protocol": 0.15, "format": 0.05}
SYSTEM_PROMPT = ("You are a helpful assistant with access to tools. Call tools when they help; if a required "
                 "detail is missing, ask the user; if no tool fits, answer directly.")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_DECLINE = re.compile(r"\b(?:can ?not|can't|can only|unable|not able|no way|isn't something|is not something|"
                      r"there's no|there is no|i have no|i don't have|i do not have|no access|not possible|"
                      r"beyond|outside|sorry)\b")


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


def _expert_calls(task: Task) -> Counter[str]:
    return Counter(c["name"] for t in task.info["turns"] for c in t["calls"])


def declines(text: str) -> bool:
    """Whether a reply says the request cannot be served ("I can't...", "I can only...", "no way...")."""
    return bool(_DECLINE.search(text.lower().replace("\u2019", "'")))


def work(episode: Episode) -> float:
    """Share of what the task needs that the agent did (see the module docstring)."""
    needed = _expert_calls(episode.task)
    if not needed:
        return float(declines(_finals(episode)))
    done = Counter(r.name for r in episode.tool_results if r.error is None)
    return sum(min(n, done[name]) for name, n in needed.items()) / sum(needed.values())


def state_match(episode: Episode) -> float:
    """Share of changed state paths that match the expert's final state (`work` when none changed)."""
    expect = episode.task.info["expect"]
    before = flatten(episode.task.info["state"])
    expected = {p: v for p, v in before.items() if p not in set(expect["removed"])} | expect["set"]
    actual = flatten(_world(episode).snapshot())
    changed = {p for p in expected.keys() | actual.keys() | before.keys()
               if expected.get(p) != before.get(p) or actual.get(p) != before.get(p)}
    if not changed:
        return work(episode)
    return sum(actual.get(p) == expected.get(p) for p in changed) / len(changed)


def _finals(episode: Episode) -> str:
    return "\n".join(m.content for m in episode.messages if m.role == "assistant" and not m.tool_calls)


def _stated(fact: str | float, text: str) -> bool:
    if isinstance(fact, str):
        return fact.lower() in text.lower()
    return any(math.isclose(float(n.replace(",", "")), fact, abs_tol=0.01) for n in _NUMBER.findall(text))


def answer_facts(episode: Episode) -> float:
    """Share of the task's facts stated in the agent's final messages, times `work`."""
    facts = episode.task.info["facts"]
    text = _finals(episode)
    stated = sum(_stated(f, text) for f in facts) / len(facts) if facts else 1.0
    return stated * work(episode)


def protocol(episode: Episode) -> float:
    """The pattern's rule about when (and which) tools to call, times `work`."""
    return _rule(episode) * work(episode)


def _rule(episode: Episode) -> float:
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


def solved(episode: Episode, breakdown: dict[str, float]) -> bool:
    """State, answer and protocol all full (which needs full `work`); format may be imperfect."""
    return all(breakdown[name] >= 1.0 for name in ("state", "answer", "protocol"))


def world_rubric() -> Rubric:
    fns = {"state": state_match, "answer": answer_facts, "protocol": protocol, "format": format_ok}
    return Rubric({name: (weight, fns[name]) for name, weight in WEIGHTS.items()}, success=solved)


def world_task_source(worlds: Sequence[str], seeds: range = TRAIN_SEEDS) -> Callable[[np.random.Generator], Task]:
    """A procedural task source: each draw picks one of `worlds` and a task seed from `seeds`."""
    names = list(worlds)

    def draw(rng: np.random.Generator) -> Task:
        return world_task(names[int(rng.integers(len(names)))], seeds[int(rng.integers(len(seeds)))])

    return draw


def split_of(worlds: str | Sequence[str] | None, split: str | None) -> tuple[list[str], range]:
    """The worlds and task seeds an env draws from; refuses a world outside the split."""
    names = [worlds] if isinstance(worlds, str) else list(worlds or [])
    if split is None:
        held = {n in HELD_OUT for n in names}
        if len(held) > 1:
            raise ValueError(f"worlds {names} mix training and held-out worlds; give split= and worlds of that split")
        split = "held_out" if held == {True} else "train"
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    allowed, seeds = SPLITS[split]
    if outside := [n for n in names if n not in allowed]:
        raise ValueError(f"split {split!r} holds the worlds {list(allowed)}, not {outside}")
    return names or list(allowed), seeds


def world_env(worlds: str | Sequence[str] | None = None, parser: str = "hermes", max_turns: int = 12,
              split: str | None = None, **kwargs: Any) -> ToolEnv:
    """A ToolEnv over the tasks of one world (a name), several (a list), or all of a split's (None).

    `split` is "train", "validation" or "held_out" (default: "held_out" for held-out worlds, else
    "train"); the reset seed picks a task of that split only.
    """
    names, seeds = split_of(worlds, split)
    return ToolEnv(tools=world_tools, tasks=world_task_source(names, seeds), rubric=world_rubric(), parser=parser,
                   system_prompt=kwargs.pop("system_prompt", SYSTEM_PROMPT), max_turns=max_turns, user=scripted_user, **kwargs)


calendar_env = partial(world_env, "calendar")
bank_env = partial(world_env, "bank")
shop_env = partial(world_env, "shop")
files_env = partial(world_env, "files")
contacts_env = partial(world_env, "contacts")
converter_env = partial(world_env, "converter")
home_env = partial(world_env, "home")
travel_env = partial(world_env, "travel")
