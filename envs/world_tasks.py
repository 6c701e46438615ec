"""Tool-world tasks of every pattern, composed from a world's intents, with their expert solutions.

`world_task(world, seed)` draws one `Task` deterministically from `seed`: a fresh random world
state, a pattern (weights in `PATTERNS`), one or more intents, and the wording around them.

Patterns: `single` (one call), `parallel` (two or three independent calls in one turn),
`multi_step` (a later call uses an earlier result), `distractors` (two other worlds' tools offered
too), `no_tool` (a request no tool serves: answer without calling), `ask_user` (a required detail
is missing: the expert asks, the scripted user answers), `multi_turn` (the user adds a second
request after the first is done).

The expert's calls are executed in fresh worlds while the task is built (a failing expert call is
a generator bug and raises), which also gives the expected final state: `info["expect"]` holds the
state paths the solution changes (`set`) and removes (`removed`). `info["turns"]` keeps the expert
turns as content plus calls, so they can be written in any tool-call format; `Task.expert` holds
them in Hermes format. Half of the tasks show their tool specs in the wild spellings
("dict"/"float", `info["schema_style"] == "wild"`).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from chord_env.envs.task import Task
from chord_env.parsing import format_hermes
from chord_env.tools import execute
from chord_env.tools.worlds import WORLDS, Intent, World
from chord_env.types import Message, ToolCall

PATTERNS: dict[str, float] = {"single": 0.2, "parallel": 0.15, "multi_step": 0.2, "distractors": 0.13,
                              "no_tool": 0.08, "ask_user": 0.12, "multi_turn": 0.12}
_OPENERS = ("", "Hi! ", "Hey, ", "Quick one: ", "Hello. ", "Please help: ")
_CLOSERS = ("", " Thanks!", " Thank you.", " Cheers.")
_FIRST = ("", "Let me take care of that.", "Sure, one moment.", "I'll look into it.", "On it.")
_NEXT = ("", "Got it; now the next step.", "Using that result:", "That gives me what I need.")
_JOINS = ("{a} Also, {b}", "{a} And {b}", "Two things. {a} {b}")
_FOLLOWUPS = ("Thanks! One more thing: {r}", "Great. {r}", "Perfect. Next, {r}", "{r}")


def world_task(world: str, seed: int, pattern: str | None = None) -> Task:
    """The task for `(world, seed)`; the same arguments always give the same task."""
    rng = np.random.default_rng([seed, zlib.crc32(world.encode())])
    cls = WORLDS[world]
    state = cls.random_state(rng)
    pattern = pattern or str(rng.choice(list(PATTERNS), p=list(PATTERNS.values())))
    turns, followups, request, facts, wordings = _compose(rng, cls, state, pattern)
    opener, closer = int(rng.integers(len(_OPENERS))), int(rng.integers(len(_CLOSERS)))
    request = _OPENERS[opener] + (_lower_first(request) if _OPENERS[opener].endswith((", ", ": ")) else request) + _CLOSERS[closer]
    wordings.append(f"frame:{opener}.{closer}")
    distractors = [str(w) for w in rng.choice(sorted(set(WORLDS) - {world}), size=2, replace=False)] if pattern == "distractors" else []
    context = f"({cls.context.format(**state)}) " if cls.context else ""
    prompt = [Message("user", context + request)]
    info: dict[str, Any] = {
        "world": world, "seed": seed, "pattern": pattern, "state": state, "distractors": distractors,
        "schema_style": "wild" if rng.random() < 0.5 else "json-schema", "facts": facts, "followups": followups,
        "wordings": wordings, "turns": turns,
    }
    info["expect"] = _expected_change(info)
    expert = [format_hermes([ToolCall(c["name"], c["arguments"]) for c in t["calls"]], t["content"]) for t in turns]
    return Task(prompt=prompt, expert=expert, id=f"{world}-{pattern}-{seed}", info=info)


def build_worlds(info: dict[str, Any]) -> list[World]:
    """Fresh worlds for a task: its own world in its starting state, then any distractor worlds."""
    worlds = [WORLDS[info["world"]](info["state"])]
    for name in info["distractors"]:
        worlds.append(WORLDS[name](WORLDS[name].random_state(np.random.default_rng(info["seed"]))))
    return worlds


def _turn(content: str, calls: list[ToolCall]) -> dict[str, Any]:
    return {"content": content, "calls": [{"name": c.name, "arguments": c.arguments} for c in calls]}


def _solve(rng: np.random.Generator, intent: Intent) -> list[dict[str, Any]]:
    turns = [_turn(str(rng.choice(_FIRST if i == 0 else _NEXT)), calls) for i, calls in enumerate(intent.steps)]
    return turns + [_turn(intent.answer, [])]


def _draw(rng: np.random.Generator, cls: type[World], state: dict, want: Any, avoid: frozenset[str] | set[str] = frozenset()) -> Intent:
    """An intent satisfying `want` whose entities avoid `avoid` (a generator that keeps failing is a bug)."""
    for _ in range(200):
        intent = cls.intents[int(rng.integers(len(cls.intents)))](rng, state)
        if want(intent) and not intent.entities & avoid:
            return intent
    raise RuntimeError(f"{cls.name}: found no suitable intent")


def _single(i: Intent) -> bool:
    return len(i.steps) == 1 and len(i.steps[0]) == 1


def _compose(rng: np.random.Generator, cls: type[World], state: dict, pattern: str) -> tuple:
    """(expert turns, follow-up user messages, request, facts, wording ids) for one pattern."""
    if pattern == "no_tool":
        index = int(rng.integers(len(cls.off_topic)))
        request, reply = cls.off_topic[index]
        return [_turn(reply, [])], [], request, [], [f"{cls.name}.off_topic:{index}"]
    if pattern == "parallel":
        first = _draw(rng, cls, state, _single)
        intents = [first, _draw(rng, cls, state, _single, first.entities)]
        join = int(rng.integers(len(_JOINS)))
        request = _JOINS[join].format(a=intents[0].request, b=_lower_first(intents[1].request))
        calls = [call for i in intents for call in i.steps[0]]
        answer = " ".join(i.answer for i in intents)
        turns = [_turn(str(rng.choice(_FIRST)), calls), _turn(answer, [])]
        return turns, [], request, _facts(intents), [i.wording for i in intents] + [f"join:{join}"]
    if pattern == "multi_turn":
        first = _draw(rng, cls, state, lambda i: True)
        second = _draw(rng, cls, state, lambda i: True, first.entities)
        follow = int(rng.integers(len(_FOLLOWUPS)))
        followup = _FOLLOWUPS[follow].format(r=_lower_first(second.request) if follow < 3 else second.request)
        return (_solve(rng, first) + _solve(rng, second), [followup], first.request, _facts([first, second]),
                [first.wording, second.wording, f"followup:{follow}"])
    if pattern == "ask_user":
        intent = _draw(rng, cls, state, lambda i: i.vague is not None)
        turns = [_turn(intent.question, [])] + _solve(rng, intent)
        return turns, [intent.reply], intent.vague, _facts([intent]), [intent.wording + ".vague"]
    want = (lambda i: len(i.steps) >= 2) if pattern == "multi_step" else (_single if pattern == "single" else (lambda i: True))
    intent = _draw(rng, cls, state, want)
    return _solve(rng, intent), [], intent.request, _facts([intent]), [intent.wording]


def _facts(intents: list[Intent]) -> list[str | float]:
    return [f for i in intents for f in i.facts]


def _lower_first(text: str) -> str:
    if text.startswith(("I ", "I'", "\"")) or text[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def flatten(state: Any, prefix: str = "") -> dict[str, str]:
    """State as `{path: JSON text of the leaf}`; lists are leaves (their order matters)."""
    if isinstance(state, dict) and state:
        out: dict[str, str] = {}
        for key, value in state.items():
            out.update(flatten(value, f"{prefix}/{key}"))
        return out
    return {prefix: json.dumps(state, sort_keys=True)}


def _expected_change(info: dict[str, Any]) -> dict[str, Any]:
    worlds = build_worlds(info)
    tools = {t.name: t for w in worlds for t in w.tools()}
    for turn in info["turns"]:
        for call in turn["calls"]:
            result = execute(ToolCall(call["name"], call["arguments"]), tools)
            if result.error:
                raise RuntimeError(f"{info['world']} seed {info['seed']}: expert call {call} failed: {result.content}")
    before, after = flatten(info["state"]), flatten(worlds[0].snapshot())
    return {"set": {p: v for p, v in after.items() if before.get(p) != v}, "removed": sorted(set(before) - set(after))}
