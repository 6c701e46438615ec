"""FunctionCallEnv's call matching against BFCL's AST checker, on catalogue tasks: the differences
`envs/function_call_env.py` documents, and no other.

Each catalogue task's expected calls become BFCL's ground truth (the function docs in BFCL's type
names; each argument's value, and for an optional parameter the expected call omits, its default or
omission). Replies are the expected calls in Hermes format, perturbed one way; both sides read the
same text (BFCL through its own Hermes decode) and must agree, except that BFCL accepts strings that
differ in case, spaces or `,./-_*^`, refuses a float where the schema says integer, and compares
numbers exactly (ours within a relative 1e-9).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from chord_env.envs import bfcl
from chord_env.envs.bfcl_checker import MODEL_NAME
from chord_env.envs.function_call_env import FunctionCallEnv, values_equal
from chord_env.envs.function_tasks import BY_NAME, task_for_seed
from chord_env.envs.task import Task
from chord_env.parsing import format_hermes
from chord_env.types import ToolCall

AGREE = {"exact": True, "add_default": True, "drop_required": False, "change_value": False, "rename": False,
         "extra_call": False, "missing_call": False, "extra_param": False}
DIFFER = {"string_case": (False, True), "string_spelling": (False, True), "float_for_integer": (True, False),
          "float_for_integer_item": (True, False), "number_within_1e-9": (True, False)}
"""kind -> (ours, BFCL's) where the documented differences apply."""
CATEGORY = {"simple": "simple", "multiple": "multiple", "parallel": "parallel", "parallel_multiple": "parallel_multiple"}


def bfcl_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema in BFCL's type names ("dict", "float"), at every depth."""
    out = dict(schema)
    out["type"] = {"object": "dict", "number": "float"}.get(out["type"], out["type"])
    if "properties" in out:
        out["properties"] = {k: bfcl_schema(v) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = bfcl_schema(out["items"])
    return out


def possible_answer(call: ToolCall) -> dict[str, dict[str, list[Any]]]:
    """An expected call as BFCL's ground truth: its values; an omitted optional parameter at its
    default or omitted, and so is one given at its default (as FunctionCallEnv reads defaults)."""
    answer = {}
    for p in BY_NAME[call.name].params:
        if p.name in call.arguments:
            value = call.arguments[p.name]
            allowed = {k: [v] for k, v in value.items()} if isinstance(value, dict) else value
            answer[p.name] = [allowed] + ([""] if not p.required and values_equal(value, p.default) else [])
        elif not p.required:
            answer[p.name] = [p.default, ""]
    return {call.name: answer}


def bfcl_verdict(task: Task, text: str) -> bool:
    calls = bfcl.decode_hermes(text).calls
    if task.info["shape"] == "irrelevance":
        return not calls
    docs = [{"name": n, "description": "", "parameters": bfcl_schema(BY_NAME[n].schema())} for n in task.info["functions"]]
    result = bfcl.bfcl().ast_checker(docs, bfcl.to_bfcl_output(calls), [possible_answer(c) for c in task.answer],
                                     bfcl.bfcl().language.PYTHON, CATEGORY[task.info["shape"]], MODEL_NAME)
    return bool(result["valid"])


def our_verdict(task: Task, text: str) -> bool:
    env = FunctionCallEnv(tasks=[task])
    env.reset(seed=0)
    _, reward, _, _, info = env.step(text)
    assert info["success"] == (reward == 1.0)
    return info["success"]


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + " (changed)"
    if isinstance(value, list):
        return value + value[:1] if value else ["x"]
    if isinstance(value, dict):
        return {**value, "extra_key": 1}
    return "changed"


def perturbed(task: Task, kind: str, rng: np.random.Generator) -> list[ToolCall] | None:
    """The expected calls changed one way (`kind`), or None where the kind does not apply."""
    calls = copy.deepcopy(list(task.answer))
    i = int(rng.integers(len(calls)))
    call, fn = calls[i], BY_NAME[calls[i].name]
    args = call.arguments
    strings = [k for k, v in args.items() if isinstance(v, str)]
    omitted = [p for p in fn.params if not p.required and p.name not in args]
    if kind == "exact":
        return calls
    if kind == "drop_required":
        required = [p.name for p in fn.params if p.required]
        if not required:
            return None
        del args[required[0]]
    elif kind == "change_value":
        key = next(iter(args), None)
        if key is None:
            return None
        args[key] = _changed(args[key])
    elif kind == "rename":
        calls[i] = ToolCall(call.name + "_v2", args)
    elif kind == "extra_call":
        calls.append(copy.deepcopy(call))
    elif kind == "missing_call":
        del calls[i]
    elif kind == "add_default":
        if not omitted:
            return None
        args[omitted[0].name] = omitted[0].default
    elif kind == "extra_param":
        for p in omitted:
            value = p.sampler.draw(rng).value
            if not values_equal(value, p.default):
                args[p.name] = value
                return calls
        return None
    elif kind == "string_case":
        key = next((k for k in strings if args[k].swapcase() != args[k]), None)
        if key is None:
            return None
        args[key] = args[key].swapcase()
    elif kind == "string_spelling":
        key = next((k for k in strings if " " in args[k].strip()), None)
        if key is None:
            return None
        args[key] = args[key].replace(" ", "")
    elif kind == "float_for_integer":
        key = next((k for k, v in args.items() if fn.param(k).sampler.type == "integer" and type(v) is int), None)
        if key is None:
            return None
        args[key] = float(args[key])
    elif kind == "float_for_integer_item":
        key = next((k for k, v in args.items() if fn.param(k).schema().get("items", {}).get("type") == "integer" and v), None)
        if key is None:
            return None
        args[key] = [float(x) for x in args[key]]
    elif kind == "number_within_1e-9":
        key = next((k for k, v in args.items() if type(v) is float and v != 0), None)
        if key is None:
            return None
        args[key] *= 1 + 1e-12
    return calls


@pytest.mark.parametrize("split", ["train", "validation"])
def test_matching_agrees_with_bfcl_except_the_documented_differences(split):
    rng = np.random.default_rng(0)
    seen: dict[str, int] = {}
    start = {"train": 0, "validation": 1_000_000_000}[split]
    for seed in range(start, start + 150):
        task = task_for_seed(seed, split)
        if task.info["shape"] == "irrelevance":
            for text, both in [(task.expert[0], True), (format_hermes([ToolCall(task.info["functions"][0], {})]), False)]:
                assert our_verdict(task, text) is both and bfcl_verdict(task, text) is both
            continue
        for kind in [*AGREE, *DIFFER]:
            calls = perturbed(task, kind, rng)
            if calls is None:
                continue
            text = format_hermes(calls)
            expected = (AGREE[kind], AGREE[kind]) if kind in AGREE else DIFFER[kind]
            assert (our_verdict(task, text), bfcl_verdict(task, text)) == expected, (task.id, kind, calls)
            seen[kind] = seen.get(kind, 0) + 1
    assert set(seen) == set(AGREE) | set(DIFFER), seen


def test_malformed_calls_and_tag_layout_are_read_differently():
    task = next(t for t in map(task_for_seed, range(200)) if t.info["shape"] == "simple")
    malformed = "<tool_call>\n{\"name\": \n</tool_call>"
    irrelevance = Task(prompt="q", answer=[], tools=task.tools, info={"shape": "irrelevance", "functions": task.info["functions"]})
    assert (our_verdict(irrelevance, malformed), bfcl_verdict(irrelevance, malformed)) == (False, True)
    squeezed = format_hermes(task.answer).replace("<tool_call>\n", "<tool_call>").replace("\n</tool_call>", "</tool_call>")
    assert (our_verdict(task, squeezed), bfcl_verdict(task, squeezed)) == (True, False)
