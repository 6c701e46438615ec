"""Single-turn function-calling tasks in BFCL's five shapes, drawn from our own function catalogue.

`function_task(rng, split)` draws a seed from the split's seed range and returns `task_for_seed(seed,
split)`: the task is a function of (seed, split) alone. Shapes (mixed by `weights`, default
`SHAPES`): `simple` (one function offered, one call), `multiple` (2-4 offered, exactly one fits),
`parallel` (one function, 2-4 calls in one turn: several full requests joined, or one request that
lists several values of one parameter), `parallel_multiple` (2-3 functions called 2-4 times in all,
sometimes with one more offered that is not needed) and `irrelevance` (1-3 functions that cannot
serve the request, often a sibling from the same domain: the expert answers in one short sentence).

Splits: `train` seeds come from `TRAIN_SEEDS` and never offer a `HELD_OUT` function (about 15% of
the catalogue, chosen by a hash of the name); `validation` seeds come from `VALIDATION_SEEDS` and
every function called (or, for irrelevance, offered) is a held-out one, so validation measures
transfer to unseen functions as BFCL does. Half of the tasks show their schemas in BFCL's spelling
("dict", "float", "tuple", defaults stated in the description), half in JSON Schema.

The expert call states the required parameters and the optional ones the request states; an
optional parameter the request leaves out is omitted. `info["defaults"]` tells `FunctionCallEnv`
which omissions and default values to accept (`{function: {parameter: default}}`).
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import numpy as np

from chord_env.envs.function_call_env import FunctionCallEnv
from chord_env.envs.function_catalog import CATALOG, CHIT_CHAT
from chord_env.envs.function_dsl import Fn, Rng, join_words, pick, render
from chord_env.envs.task import Task
from chord_env.parsing import format_hermes
from chord_env.types import ToolCall, ToolSpec

SHAPES: dict[str, float] = {"simple": 0.4, "multiple": 0.2, "parallel": 0.15, "parallel_multiple": 0.1, "irrelevance": 0.15}
"""The default shape mix: simple-heavy (BFCL simple_python is the headline) and ~400 tokens a trace."""
SPLITS = ("train", "validation")
TRAIN_SEEDS = range(0, 1_000_000_000)
VALIDATION_SEEDS = range(1_000_000_000, 2_000_000_000)
SEEDS = {"train": TRAIN_SEEDS, "validation": VALIDATION_SEEDS}
HELD_OUT: frozenset[str] = frozenset(name for name in CATALOG if zlib.crc32(name.encode()) % 100 < 15)
"""The functions only validation offers (about 15% of the catalogue, fixed by a hash of each name)."""

BY_NAME: dict[str, Fn] = CATALOG
_POOLS = {"train": sorted(set(CATALOG) - HELD_OUT), "validation": sorted(HELD_OUT)}
_DOMAINS: dict[str, list[str]] = {}
for _fn in CATALOG.values():
    _DOMAINS.setdefault(_fn.domain, []).append(_fn.name)

NO_FUNCTION_REPLIES = (
    "None of the available functions can do that.",
    "Sorry, I can't help with that using the functions I have.",
    "The provided functions cannot answer this request.",
    "I don't have a function that can do this.",
    "None of the given tools fit this request, so I can't call any of them.",
)
_JOINS = ("{a} Also, {b}", "{a} Then {b}", "{a} And {b}", "{a} {b}")


def function_task(rng: Rng, split: str = "train", weights: dict[str, float] | None = None) -> Task:
    """A task from a seed drawn with `rng` in the split's seed range (see `task_for_seed`)."""
    seeds = SEEDS[split]
    return task_for_seed(seeds.start + int(rng.integers(len(seeds))), split, weights)


def task_for_seed(seed: int, split: str = "train", weights: dict[str, float] | None = None) -> Task:
    """The task for `(seed, split)`; the same arguments always give the same task."""
    if split not in SEEDS or seed not in SEEDS[split]:
        raise ValueError(f"seed {seed} is not in the {split!r} seed range {SEEDS.get(split)}")
    weights = weights or SHAPES
    rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
    shape = str(rng.choice(list(weights), p=np.array(list(weights.values())) / sum(weights.values())))
    pool = _POOLS[split]
    offer_pool = pool if split == "train" else sorted(CATALOG)
    target = BY_NAME[pick(rng, pool)]
    wordings: list[str] = []
    if shape == "irrelevance":
        offered = [target] + _distractors(rng, target, int(rng.choice(3, p=[0.6, 0.3, 0.1])), offer_pool)
        request, calls = _irrelevant_request(rng, offered, wordings), []
    elif shape == "parallel":
        request, calls = _parallel(rng, target, wordings)
        offered = [target]
    elif shape == "parallel_multiple":
        called = [target] + _distractors(rng, target, 1 if rng.random() < 0.75 else 2, pool)
        counts = [1] * len(called)
        total = int(rng.choice([2, 3, 4], p=[0.5, 0.35, 0.15]))
        while sum(counts) < total:
            counts[int(rng.integers(len(called)))] += 1
        parts = [_instance(rng, fn, wordings) for fn, c in zip(called, counts) for _ in range(c)]
        order = rng.permutation(len(parts))
        request = _join(rng, [parts[i][0] for i in order])
        calls = [parts[i][1] for i in order]
        extra = _distractors(rng, target, 1, offer_pool, avoid=called) if rng.random() < 0.15 else []
        offered = called + extra
    else:
        request, call = _instance(rng, target, wordings)
        calls = [call]
        n_offered = 1 if shape == "simple" else int(rng.choice([2, 3, 4], p=[0.7, 0.2, 0.1]))
        offered = [target] + _distractors(rng, target, n_offered - 1, offer_pool)
    offered = [offered[int(i)] for i in rng.permutation(len(offered))]
    style = "bfcl" if rng.random() < 0.5 else "json-schema"
    tools = [tool_spec(fn, style, rng) for fn in offered]
    expert = [format_hermes(calls)] if calls else [pick(rng, NO_FUNCTION_REPLIES)]
    info: dict[str, Any] = {
        "shape": shape, "split": split, "seed": seed, "schema_style": style, "wordings": wordings,
        "functions": [fn.name for fn in offered], "called": sorted({c.name for c in calls}),
        "defaults": {fn.name: fn.defaults() for fn in offered if fn.defaults()},
    }
    return Task(prompt=request, answer=calls, expert=expert, id=f"fc-{split}-{shape}-{seed}", tools=tools, info=info)


def _distractors(rng: Rng, target: Fn, k: int, pool: list[str], avoid: list[Fn] = ()) -> list[Fn]:
    """`k` other functions, each from the target's own domain half of the time."""
    taken = {target.name} | {f.name for f in avoid}
    out: list[Fn] = []
    for _ in range(k):
        siblings = [n for n in _DOMAINS[target.domain] if n not in taken and n in pool]
        options = siblings if siblings and rng.random() < 0.5 else [n for n in pool if n not in taken]
        fn = BY_NAME[pick(rng, options)]
        taken.add(fn.name)
        out.append(fn)
    return out


def _draw_args(rng: Rng, fn: Fn, phrasing: str, vary: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(arguments, surfaces) for one call: required parameters, and each optional one the phrasing
    can state with probability 1/2."""
    args: dict[str, Any] = {}
    surfaces: dict[str, str] = {}
    linked: dict[str, Any] = {}
    for p in fn.params:
        if p.name in linked or p.name in fn.linked():
            continue
        if not p.required and (f"{{{p.name}" not in phrasing or rng.random() < 0.5):
            continue
        d = p.sampler.draw(rng)
        args[p.name] = d.value
        surfaces[p.name] = d.surface
        surfaces.update({f"{p.name}.{k}": v for k, v in d.parts.items()})
        linked.update(d.linked)
    for p in fn.params:
        if p.name in linked:
            args[p.name] = linked[p.name]
    return {p.name: args[p.name] for p in fn.params if p.name in args}, surfaces


def _instance(rng: Rng, fn: Fn, wordings: list[str]) -> tuple[str, ToolCall]:
    index = int(rng.integers(len(fn.phrasings)))
    wordings.append(f"{fn.name}:{index}")
    args, surfaces = _draw_args(rng, fn, fn.phrasings[index])
    return _mark(fn.phrasings[index], render(fn.phrasings[index], surfaces)), ToolCall(fn.name, args)


class _Text(str):
    """A rendered request that knows whether its first letter may be lowered when it is joined."""

    lowerable = False


def _mark(template: str, text: str) -> str:
    out = _Text(text)
    out.lowerable = not template.startswith("{") and not re.match(r"I\b", text)
    return out


def _parallel(rng: Rng, fn: Fn, wordings: list[str]) -> tuple[str, list[ToolCall]]:
    k = int(rng.choice([2, 3, 4], p=[0.6, 0.3, 0.1]))
    index = int(rng.integers(len(fn.phrasings)))
    phrasing = fn.phrasings[index]
    varied = [p for p in fn.params if p.required and p.sampler.scalar() and f"{{{p.name}}}" in phrasing]
    if varied and rng.random() < 0.5:
        p = varied[0]
        args, surfaces = _draw_args(rng, fn, phrasing)
        draws = []
        for _ in range(20):
            d = p.sampler.draw(rng)
            if all(d.value != x.value for x in draws):
                draws.append(d)
            if len(draws) == k:
                break
        surfaces[p.name] = join_words(rng, [d.surface for d in draws])
        wordings.append(f"{fn.name}:{index}:vary")
        return render(phrasing, surfaces), [ToolCall(fn.name, {**args, p.name: d.value}) for d in draws]
    parts = [_instance(rng, fn, wordings) for _ in range(k)]
    return _join(rng, [text for text, _ in parts]), [call for _, call in parts]


def _lower_first(text: str) -> str:
    if not getattr(text, "lowerable", False) or text[1:2].isupper():
        return str(text)
    return text[:1].lower() + text[1:]


def _join(rng: Rng, requests: list[str]) -> str:
    if len(requests) > 2 and rng.random() < 0.3:
        return " ".join(f"{i}) {r}" for i, r in enumerate(requests, 1))
    text = requests[0]
    for r in requests[1:]:
        template = pick(rng, _JOINS)
        text = template.format(a=text, b=r if template == "{a} {b}" else _lower_first(r))
    return text


def _irrelevant_request(rng: Rng, offered: list[Fn], wordings: list[str]) -> str:
    """A request none of `offered` can serve: another function's (a sibling's half the time), or chit-chat."""
    names = {fn.name for fn in offered}
    if rng.random() < 0.15:
        index = int(rng.integers(len(CHIT_CHAT)))
        wordings.append(f"chit_chat:{index}")
        return CHIT_CHAT[index]
    siblings = [n for n in _DOMAINS[offered[0].domain] if n not in names]
    other = BY_NAME[pick(rng, siblings if siblings and rng.random() < 0.5 else [n for n in sorted(CATALOG) if n not in names])]
    return _instance(rng, other, wordings)[0]


_BFCL_TYPES = {"object": "dict", "number": "float"}


def _bfcl_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (_BFCL_TYPES.get(v, v) if k == "type" and isinstance(v, str) else _bfcl_types(v)) for k, v in node.items()}
    return node


def tool_spec(fn: Fn, style: str, rng: Rng | None = None) -> ToolSpec:
    """The spec shown for `fn`: JSON Schema (defaults as `default` keys), or BFCL's spelling ("dict",
    "float", "tuple" for pairs; defaults said in the description, sometimes also as keys)."""
    schema = fn.schema()
    default_key = style != "bfcl" or (rng is not None and rng.random() < 0.3)
    for p in fn.params:
        prop = schema["properties"][p.name]
        if style == "bfcl" and p.sampler.tuple_like:
            prop["type"] = "tuple"
        if not p.required:
            if style == "bfcl":
                prop["description"] += f" Default is {json.dumps(p.default)}."
            if default_key:
                prop["default"] = p.default
    return ToolSpec(fn.name, fn.description, _bfcl_types(schema) if style == "bfcl" else schema)


def function_catalog_env(split: str = "train", weights: dict[str, float] | None = None, **kwargs: Any) -> FunctionCallEnv:
    """FunctionCallEnv over catalogue tasks of one split (`chord/FunctionCatalog-v0`); reset(seed=s)
    always gives the same task for the same split."""
    if split not in SEEDS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    unknown = set(weights or {}) - set(SHAPES)
    if unknown:
        raise ValueError(f"unknown shapes {sorted(unknown)}; choose from {sorted(SHAPES)}")

    def tasks(rng: Rng) -> Task:
        return function_task(rng, split, weights)

    return FunctionCallEnv(tasks=tasks, **kwargs)
