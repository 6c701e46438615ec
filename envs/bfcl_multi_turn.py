"""BFCL multi-turn (base, miss_func, miss_param, long_context) as a Gymnasium env, scored by BFCL's checker.

An episode is one BFCL entry: a conversation of several user turns over BFCL's stateful backends
(GorillaFileSystem, TwitterAPI, TravelAPI, ...). The env mirrors BFCL's inference loop
(`BaseHandler.inference_multi_turn_*`, bfcl-eval 2026.3.23) step for step:

- `reset` builds fresh backend instances for the entry (`involved_classes`, loaded with
  `initial_config`, `long_context` for that category) through BFCL's own
  `execute_multi_turn_func_call`, and returns the first turn's messages; `info["tools"]` are the
  entry's functions (`multi_turn_func_doc`, Python hint, BFCL's type names mapped as in
  `bfcl.to_tool_spec`).
- `step(action)`: the action is decoded in Hermes format as BFCL's Hermes handler does
  (`bfcl.decode_hermes(..., execute=True)`; other formats with our parsers).
  A step with calls is executed on the instances, in order, by BFCL's executor (so results and
  error strings are BFCL's), and the observation is one `tool` message per call. A step that
  decodes to no call ends the user turn, as in BFCL ("Proceed to next turn"): the observation is
  the next turn's user message, or the episode terminates after the last turn and is scored.
  A turn with more than `MAX_STEPS_PER_TURN` (BFCL's `MAXIMUM_STEP_LIMIT`, 20) executed steps
  truncates the episode, which fails as BFCL's "force_terminated".
- miss_func: at the turn BFCL names in `missed_function`, the held-out functions join the offered
  tools (`self.tools`, `info["tools"]`) and the user message is BFCL's prompting-mode message for
  it: the new functions as JSON lines, then "I have updated some more functions you can choose
  from. What about now?". Deviation: BFCL's FC handlers re-render the system prompt with the new
  tools; a token-in/token-out rollout cannot rewrite its prefix, so the new tools arrive in the
  user turn, as in BFCL's prompting mode.
- Scoring: at the end the per-turn, per-step decoded call strings (the strings BFCL's
  `convert_to_function_call` writes; empty steps dropped, as `_evaluate_single_multi_turn_entry`
  does) go to BFCL's `multi_turn_checker` under a model name unique to the episode, which replays
  them and the ground truth on fresh instances and checks state and responses after each turn.
  The rubric (`multi_turn_rubric`) has one term, `bfcl`: 1.0 iff valid; the verdict (`score`'s
  dict) is `info["verdict"]` and `env.verdict`, the decoded strings `info["decoded"]`. A truncated
  episode is BFCL's "force_terminated" failure. bfcl-eval 2026.3.23 imports but never calls
  `multi_turn_irrelevance_checker`; its verdict is reported in `info` and does not score.
- Registered as `chord/BFCLMultiTurn-v0` (`bfcl_multi_turn_env`): BFCL is held out, so the env has
  one split, `held_out`, and refuses any other.

Safety: BFCL executes calls with `eval` on the call string. The env never passes a model-chosen
name to it unless it is a public method of the episode's instances, and never an argument name
that is not a plain identifier: such a call becomes a call to an undefined name (an execution error
for BFCL's checker too; BFCL itself would `eval` it). Values are written with `repr` of JSON values.
BFCL caches instances in `multi_turn_utils`'s module globals by model name and never frees them;
the env deletes its own entries on scoring and on `close`.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from chord_env.envs.base import ChatEnv
from chord_env.envs.bfcl import decode_hermes, to_tool_spec
from chord_env.envs.bfcl_checker import bfcl
from chord_env.envs.rewards import Episode, Rubric
from chord_env.envs.task import Task
from chord_env.parsing import FORMATTERS, PARSERS
from chord_env.types import Message, ToolCall, ToolSpec

CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
MAX_STEPS_PER_TURN = 20
"""BFCL's `MAXIMUM_STEP_LIMIT`: executed steps in one user turn before the entry is force-terminated."""
ADDED_FUNCTIONS_PROMPT = "{functions}\nI have updated some more functions you can choose from. What about now?"
"""BFCL's `DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING`."""
UNDEFINED = "undefined_function__chord_env"
"""Stands in for a call BFCL's `eval` must not see (it fails as a call to an undefined name)."""

EMPTY_TURN = "empty_turn"
STATE_MISMATCH = "state_mismatch"
RESPONSE_MISMATCH = "response_mismatch"
FORCE_TERMINATED = "force_terminated"
CHECKER_ERROR = "checker_error"
_ERROR_TYPES = {
    "multi_turn:empty_turn_model_response": EMPTY_TURN,
    "multi_turn:instance_state_mismatch": STATE_MISMATCH,
    "multi_turn:execution_response_mismatch": RESPONSE_MISMATCH,
}


@dataclass
class MultiTurnCase:
    """One BFCL multi-turn entry."""

    id: str
    category: str
    turns: list[list[Message]]
    """The user messages of each turn (empty at a miss_func turn that adds functions)."""
    functions: list[dict[str, Any]]
    """Functions offered from the start (with BFCL's Python hint)."""
    missed: dict[int, list[dict[str, Any]]]
    """miss_func: turn index -> functions added at that turn."""
    ground_truth: list[list[str]]
    """BFCL's ground-truth call strings, per turn."""
    entry: dict[str, Any]
    """What BFCL's checker reads: `id`, `initial_config`, `involved_classes`."""


@lru_cache(maxsize=None)
def _load(category: str) -> tuple[MultiTurnCase, ...]:
    b = bfcl()
    entries = b.load_dataset_entry(category, include_prereq=False, include_language_specific_hint=True)
    answers = b.load_ground_truth_entry(category)
    return tuple(
        MultiTurnCase(
            id=e["id"],
            category=category,
            turns=[[Message.from_openai(m) for m in turn] for turn in e["question"]],
            functions=e["function"],
            missed={int(k): v for k, v in e.get("missed_function", {}).items()},
            ground_truth=a["ground_truth"],
            entry={k: e[k] for k in ("id", "initial_config", "involved_classes")},
        )
        for e, a in zip(entries, answers, strict=True)
    )


def load_cases(category: str) -> list[MultiTurnCase]:
    """Every entry of one multi-turn category, in BFCL's order (loaded once per process)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {category!r}; choose from {CATEGORIES}")
    return list(_load(category))


def _utils() -> Any:
    bfcl()
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    return multi_turn_utils


def _backend_class(name: str) -> type:
    import importlib

    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    return getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[name]), name)


def call_string(call: ToolCall, methods: set[str] | frozenset[str]) -> str:
    """A parsed call as BFCL's `convert_to_function_call` writes it, made safe for BFCL's `eval`."""
    arguments = call.arguments if isinstance(call.arguments, dict) else {}
    safe = call.name in methods and all(isinstance(k, str) and k.isidentifier() for k in arguments)
    name = call.name if safe else UNDEFINED
    return f"{name}({','.join(f'{k}={v!r}' for k, v in arguments.items())})" if safe else f"{name}()"


def parse_call_string(text: str, classes: list[str]) -> ToolCall:
    """A BFCL ground-truth call string (`cd(folder='x')`, positional arguments too) as a `ToolCall`;
    positional arguments are named from the method's signature on the entry's classes."""
    node = ast.parse(text, mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a plain call: {text!r}")
    name = node.func.id
    arguments = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    if node.args:
        owner = next(c for c in map(_backend_class, classes) if hasattr(c, name))
        names = [p for p in inspect.signature(getattr(owner, name)).parameters if p != "self"]
        arguments = {**dict(zip(names, (ast.literal_eval(a) for a in node.args))), **arguments}
    return ToolCall(name, arguments)


def expert_turns(case: MultiTurnCase, parser: str = "hermes") -> list[str]:
    """The assistant texts of the ground truth: per user turn, one message with all its calls (if
    any), then one without a call that ends the turn."""
    texts = []
    for calls in case.ground_truth:
        if calls:
            texts.append(FORMATTERS[parser]([parse_call_string(c, case.entry["involved_classes"]) for c in calls]))
        texts.append("Done." if calls else "I cannot do that with the functions I have.")
    return texts


def to_task(case: MultiTurnCase) -> Task:
    """A case as a `Task` (the env reads the case from `info["case"]`)."""
    return Task(prompt=case.turns[0], id=case.id, tools=[to_tool_spec(f) for f in case.functions],
                info={"case": case, "category": case.category}, expert=expert_turns(case))


def tasks(categories: tuple[str, ...] | list[str] = CATEGORIES) -> list[Task]:
    """Every entry of the given categories as tasks."""
    return [to_task(c) for category in categories for c in load_cases(category)]


def score(case: MultiTurnCase, decoded: list[list[list[str]]], model_name: str | None = None) -> dict[str, Any]:
    """BFCL's verdict on per-turn, per-step decoded call strings, as its eval runner computes it
    (force-terminated when there are fewer turns than the ground truth). Never raises."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import (
        multi_turn_checker,
        multi_turn_irrelevance_checker,
    )

    if len(decoded) != len(case.ground_truth):
        return {"correct": False, "error_type": FORCE_TERMINATED, "bfcl_error_type": "multi_turn:force_terminated",
                "detail": f"{len(decoded)} of {len(case.ground_truth)} turns"}
    name = model_name or _episode_name()
    try:
        result = multi_turn_checker(decoded, case.ground_truth, case.entry, case.category, name)
    except Exception as e:  # BFCL's checker on arbitrary output: a failed case, never a crashed run
        result = {"valid": False, "error_type": None, "error_message": f"{type(e).__name__}: {e}", "crashed": True}
    finally:
        release(name)
    irrelevance = multi_turn_irrelevance_checker(decoded, case.ground_truth)["valid"]
    if result["valid"]:
        return {"correct": True, "error_type": None, "bfcl_error_type": None, "detail": "", "irrelevance_ok": irrelevance}
    error_type = CHECKER_ERROR if result.get("crashed") else _ERROR_TYPES.get(result.get("error_type"), CHECKER_ERROR)
    return {"correct": False, "error_type": error_type, "bfcl_error_type": result.get("error_type"),
            "detail": str(result.get("error_message", ""))[:500], "irrelevance_ok": irrelevance}


def multi_turn_rubric() -> Rubric:
    """One term, `bfcl`: 1.0 iff BFCL's checker accepts the episode's decoded calls
    (`episode.details["decoded"]`); a truncated episode fails as force-terminated. The verdict is
    left in `episode.details["verdict"]`."""

    def bfcl_term(episode: Episode) -> float:
        if episode.truncation is not None:
            found = {"correct": False, "error_type": FORCE_TERMINATED, "bfcl_error_type": "multi_turn:force_terminated",
                     "detail": f"truncated: {episode.truncation}"}
        else:
            found = score(episode.task.info["case"], episode.details["decoded"])
        episode.details["verdict"] = found
        return float(found["correct"])

    return Rubric({"bfcl": (1.0, bfcl_term)})


def _episode_name() -> str:
    return f"chord_env_{uuid.uuid4().hex}"


def release(model_name: str) -> int:
    """Delete BFCL's cached instances of `model_name` (all of its variants); returns how many."""
    module_globals = vars(_utils())
    prefix = re.sub(r"[-./:]", "_", model_name) + "_"
    stale = [k for k in module_globals if k.startswith(prefix) and k.endswith("_instance")]
    for k in stale:
        del module_globals[k]
    return len(stale)


class BFCLMultiTurnEnv(ChatEnv):
    """One BFCL multi-turn entry per episode; reward 1.0 iff BFCL's checker accepts the conversation.

    Args:
        tasks: tasks from `tasks()` / `to_task` (each carries its `MultiTurnCase`).
        parser: the tool-call format the agent writes.
        system_prompt: an optional system message opening every episode.
    """

    def __init__(self, tasks: list[Task], parser: str = "hermes", system_prompt: str | None = None):
        super().__init__(tasks, system_prompt)
        self._parse = partial(decode_hermes, execute=True) if parser == "hermes" else PARSERS[parser]
        self.rubric = multi_turn_rubric()
        self._name: str | None = None
        self.verdict: dict[str, Any] | None = None
        """BFCL's verdict on the last episode, once it ended (`score`'s dict)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list, dict]:
        self.close()
        opening, info = super().reset(seed=seed, options=options)
        self.case: MultiTurnCase = self.task.info["case"]
        self._name = _episode_name()
        _, instances = self._execute([])
        self.methods = frozenset(
            n for inst in instances.values() for n, _ in inspect.getmembers(inst, inspect.ismethod) if not n.startswith("_")
        )
        self.tools: list[ToolSpec] = list(self.task.tools)
        self.messages = list(opening)
        self.turn, self.steps = 0, 0
        self.actions: list[str] = []
        self.decoded: list[list[list[str]]] = [[]]
        self.verdict: dict[str, Any] | None = None
        return opening, {**info, "tools": list(self.tools)}

    def _execute(self, strings: list[str]) -> tuple[list[str], dict[str, Any]]:
        return _utils().execute_multi_turn_func_call(
            strings, self.case.entry["initial_config"], self.case.entry["involved_classes"], self._name,
            self.case.id, long_context="long_context" in self.case.category,
        )

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        self._begin_step(action)
        self.actions.append(action)
        parsed = self._parse(action)
        calls = [ToolCall(c.name, c.arguments, f"call_{self.turn}_{self.steps}_{i}") for i, c in enumerate(parsed.calls)]
        self.messages.append(Message("assistant", parsed.content, tool_calls=calls))
        info: dict[str, Any] = {"turn": self.turn, "parse_error": parsed.error,
                                "tool_calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in calls]}
        if calls:
            strings = [call_string(c, self.methods) for c in calls]
            results, _ = self._execute(strings)
            self.decoded[-1].append(strings)
            self.steps += 1
            observation = [
                Message("tool", r if s != f"{UNDEFINED}()" else f"Error during execution: no function named {c.name!r} "
                        "(or an invalid argument name)", tool_call_id=c.id, name=c.name)
                for c, s, r in zip(calls, strings, results)
            ]
            self.messages.extend(observation)
            if self.steps > MAX_STEPS_PER_TURN:
                reward, finished = self._finish("max_steps")
                return observation, reward, False, True, {**info, **finished, "truncation": "max_steps"}
            return observation, 0.0, False, False, {**info, "truncation": None}
        self.turn, self.steps = self.turn + 1, 0
        if self.turn == len(self.case.turns):
            reward, finished = self._finish(None)
            return [], reward, True, False, {**info, **finished, "truncation": None}
        self.decoded.append([])
        observation = self._user_turn(self.turn)
        self.messages.extend(observation)
        return observation, 0.0, False, False, {**info, "tools": list(self.tools), "truncation": None}

    def _user_turn(self, turn: int) -> list[Message]:
        added = [to_tool_spec(f) for f in self.case.missed.get(turn, [])]
        if not added:
            return list(self.case.turns[turn])
        self.tools += added
        functions = "\n".join(json.dumps(t.to_openai()) for t in added)
        return [Message("user", ADDED_FUNCTIONS_PROMPT.format(functions=functions))]

    def _finish(self, truncation: str | None) -> tuple[float, dict[str, Any]]:
        """Score the episode with the rubric (BFCL's checker) and free its instances."""
        self._done = True
        episode = Episode(task=self.task, messages=list(self.messages), final_answer=None, tool_results=[],
                          parse_errors=0, turns=len(self.actions), tools={}, truncation=truncation,
                          actions=list(self.actions), details={"decoded": self.decoded})
        try:
            reward, info = self.rubric.score(episode, finished=truncation is None)
        finally:
            self.close()
        self.verdict = info.get("verdict")
        return reward, info

    def close(self) -> None:
        if self._name is not None:
            release(self._name)
            self._name = None


def bfcl_multi_turn_env(split: str = "held_out", categories: tuple[str, ...] | list[str] = CATEGORIES,
                        parser: str = "hermes", system_prompt: str | None = None) -> BFCLMultiTurnEnv:
    """`chord/BFCLMultiTurn-v0`: BFCL's multi-turn `categories` (all four by default). BFCL is held
    out: `split` must be "held_out"; "train" and "validation" are refused."""
    if split != "held_out":
        raise ValueError(f"BFCL is held-out evaluation data: split {split!r} does not exist, only 'held_out'")
    return BFCLMultiTurnEnv(tasks(categories), parser=parser, system_prompt=system_prompt)
