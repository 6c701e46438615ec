"""What every tool world shares: state held in one dict, tools made from methods, and intents.

A world is a small simulated service (a calendar, a bank, a shop...) whose state is one
JSON-serialisable dict, so a task can carry its world's starting state and every episode gets a
fresh copy (`World(state)` deep-copies it). Its tools are methods marked with `@world_tool`: the
JSON Schema is generated once per class by `@tool` from the method's signature without `self`,
and `World.tools()` binds the schemas to this instance's methods (a cheap copy per episode, no
schema work). Failures are exceptions with a message for the agent (`WorldError` and subclasses);
the executor turns them into tool errors.

An `Intent` is one thing a user may want done in a world: the request in the user's words, the
expert's call turns, the final answer, and the facts that answer must state. A world's
`intents` are functions `(rng, state) -> Intent`; `chord_env.envs.world_tasks` composes them into
tasks of every pattern. Intents name the entities they touch so composed intents stay independent.

`wild_spec` rewrites a spec's JSON-Schema type names into the spellings seen in the wild
("object" -> "dict", "number" -> "float"); it changes only what the model is shown, validation
keeps the real schema.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from chord_env.tools.schema import Tool, tool
from chord_env.types import ToolCall, ToolSpec


class WorldError(Exception):
    """A failure the agent should read and react to (bad value, rule broken)."""


class NotFound(WorldError):
    """The named thing does not exist."""


def world_tool(method: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a world method as a tool; its schema is built from the signature without `self`."""
    signature = inspect.signature(method)

    def stub(**kwargs: Any) -> Any:
        raise RuntimeError(f"{method.__name__} is a template; call World.tools() for bound tools")

    functools.update_wrapper(stub, method)
    stub.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    method.tool_template = tool(stub, timeout=None)
    return method


class World:
    """Base of the worlds: a state dict, `@world_tool` methods, and the world's task material.

    Subclasses set `name`, `random_state(rng)`, `intents`, `off_topic` (requests no tool of the
    world can serve, with the expert's reply) and optionally `context` (a line the user states
    first, formatted with the state, e.g. today's date).
    """

    name: ClassVar[str]
    intents: ClassVar[Sequence[Callable[[np.random.Generator, dict], "Intent"]]] = ()
    off_topic: ClassVar[Sequence[tuple[str, str]]] = ()
    context: ClassVar[str | None] = None

    def __init__(self, state: dict[str, Any]):
        self.state = copy.deepcopy(state)

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def templates(cls) -> list[Tool]:
        """The class's tools with unbound stubs (for names and specs)."""
        return [m.tool_template for m in vars(cls).values() if hasattr(m, "tool_template")]

    def tools(self, style: str = "json-schema") -> list[Tool]:
        """This instance's tools; `style="wild"` shows the model the wild type spellings."""
        bound = []
        for template in self.templates():
            spec = wild_spec(template.spec) if style == "wild" else template.spec
            bound.append(dataclasses.replace(template, fn=getattr(self, template.name), spec=spec))
        return bound

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)


@dataclass
class Intent:
    """One user goal in a world and its expert solution.

    `steps` are the expert's call turns (each turn's calls are independent; a later turn may use
    what an earlier one returned). `facts` are what the final answer must state: a string to be
    found (case-insensitive) or a number to be found by value. `vague`, `question` and `reply` make
    the missing-detail variant: the request without a required detail, the expert's question, and
    the user's answer.
    """

    request: str
    steps: list[list[ToolCall]]
    answer: str
    facts: list[str | float] = field(default_factory=list)
    entities: set[str] = field(default_factory=set)
    wording: str = ""
    vague: str | None = None
    question: str | None = None
    reply: str | None = None


def say(rng: np.random.Generator, key: str, templates: Sequence[str], **values: Any) -> tuple[str, str]:
    """One paraphrase of `templates` filled with `values`, and its wording id (`key:index`)."""
    index = int(rng.integers(len(templates)))
    return templates[index].format(**values), f"{key}:{index}"


def choose(rng: np.random.Generator, options: Sequence[Any], k: int | None = None) -> Any:
    """One option (or `k` distinct ones, as a list), drawn with `rng`."""
    if k is None:
        return options[int(rng.integers(len(options)))]
    return [options[int(i)] for i in rng.choice(len(options), size=k, replace=False)]


_WILD_TYPES = {"object": "dict", "number": "float"}


def wild_spec(spec: ToolSpec) -> ToolSpec:
    """The spec with "object" spelled "dict" and "number" spelled "float" (as some benchmarks do)."""
    return ToolSpec(spec.name, spec.description, _rename_types(spec.parameters))


def _rename_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_rename_types(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            out[key] = _WILD_TYPES.get(value, value)
        elif key == "type" and isinstance(value, list):
            out[key] = [_WILD_TYPES.get(v, v) for v in value]
        elif key in ("properties", "default", "enum"):
            out[key] = {k: _rename_types(v) for k, v in value.items()} if key == "properties" else value
        else:
            out[key] = _rename_types(value)
    return out
