"""BFCL single-turn as a Gymnasium env (`chord/BFCL-v0`): one case per episode, scored by BFCL's checker.

An episode is one BFCL single-turn entry (`bfcl.BFCLCase`): the observation is the entry's question
(the messages BFCL's generation step gives a function-calling model), `info["tools"]` its functions;
the action is one assistant turn, and the episode ends there. The rubric (`bfcl_rubric`) has one
term, `bfcl`: BFCL's verdict on the turn (`verdict`), 1.0 iff correct. The verdict decodes the text
as BFCL's Hermes handler does (`bfcl.decode_hermes`; other formats with our parsers) and applies
BFCL's rules (`bfcl.score`: the AST checker, or call / no call for the relevance categories); the
full verdict (our error type, BFCL's, the calls) is `info["verdict"]`. `chord-env eval` plays these
envs greedily through the rollout runner (`agents/evaluate.py`), so a BFCL score is this env's reward.

BFCL is held-out evaluation data: the env has one split, `held_out`, and refuses any other
(`bfcl_env`), so a training run can never draw a BFCL task (`envs/mixture.make_for_split` then leaves
the env out). The cases are BFCL's shipped data, read once per process and never written.
"""

from __future__ import annotations

from typing import Any, Sequence

from chord_env.envs import bfcl
from chord_env.envs.base import ChatEnv
from chord_env.envs.rewards import Episode, Rubric
from chord_env.envs.task import Task
from chord_env.parsing import PARSERS, ParseResult, format_hermes

DEFAULT_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
"""The non-live Python categories (BFCL's headline AST and hallucination cases)."""
SPLITS = ("held_out",)
DECLINE = "None of the provided functions can do that."


def decode(text: str, parser: str = "hermes") -> ParseResult:
    """The calls of one reply: BFCL's Hermes decode for Hermes, else our parser for `parser`'s format."""
    return bfcl.decode_hermes(text) if parser == "hermes" else PARSERS[parser](text)


def verdict(case: bfcl.BFCLCase, text: str, parser: str = "hermes") -> dict[str, Any]:
    """BFCL's verdict on `text` as the reply to `case`, as a JSON-ready dict: `correct`,
    `error_type`, `bfcl_error_type`, `detail`, the decoded `calls` and the `parse_error`."""
    parsed = decode(text, parser)
    calls = [{"name": c.name, "arguments": c.arguments} for c in parsed.calls]
    return {**bfcl.score(case, parsed).__dict__, "calls": calls, "parse_error": parsed.error}


def bfcl_rubric(parser: str = "hermes") -> Rubric:
    """One term, `bfcl`: 1.0 iff BFCL's verdict on the episode's reply is correct (the verdict is left
    in `episode.details["verdict"]`)."""

    def bfcl_term(episode: Episode) -> float:
        found = verdict(episode.task.info["case"], episode.actions[-1], parser)
        episode.details["verdict"] = found
        return float(found["correct"])

    return Rubric({"bfcl": (1.0, bfcl_term)})


def to_task(case: bfcl.BFCLCase) -> Task:
    """A case as a `Task`; its expert is the ground truth in Hermes format (a decline for irrelevance,
    none for live_relevance, where any call is right)."""
    if case.ground_truth is not None:
        expert = [format_hermes(bfcl.ground_truth_calls(case))]
    else:
        expert = [DECLINE] if "irrelevance" in case.category else []
    return Task(prompt=list(case.messages), answer=case.ground_truth, expert=expert, id=case.id, tools=list(case.tools),
                info={"case": case, "category": case.category})


def tasks(categories: Sequence[str] = DEFAULT_CATEGORIES) -> list[Task]:
    """Every case of the given single-turn categories as tasks, in BFCL's order."""
    return [to_task(case) for category in categories for case in bfcl.load_cases(category)]


class BFCLEnv(ChatEnv):
    """One BFCL single-turn case per episode; reward 1.0 iff BFCL's checker accepts the reply.

    Args:
        tasks: tasks from `tasks()` / `to_task` (each carries its `BFCLCase`).
        parser: the tool-call format the agent writes ("hermes": decoded as BFCL's Hermes handler does).
        system_prompt: an optional system message opening every episode.
    """

    def __init__(self, tasks: Sequence[Task], parser: str = "hermes", system_prompt: str | None = None):
        if parser not in PARSERS:
            raise ValueError(f"unknown parser {parser!r}; choose one of {sorted(PARSERS)}")
        super().__init__(list(tasks), system_prompt)
        self.parser = parser
        self.rubric = bfcl_rubric(parser)

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        self._begin_step(action)
        parsed = decode(action, self.parser)
        reward, info = self._score_turn(action, parsed)
        calls = [{"name": c.name, "arguments": c.arguments} for c in parsed.calls]
        return [], reward, True, False, {"tool_calls": calls, "parse_error": parsed.error, **info}


def bfcl_env(split: str = "held_out", categories: Sequence[str] = DEFAULT_CATEGORIES, parser: str = "hermes",
             system_prompt: str | None = None) -> BFCLEnv:
    """`chord/BFCL-v0`: BFCL's single-turn `categories` (the non-live Python ones by default). BFCL
    is held out: `split` must be "held_out"; "train" and "validation" are refused."""
    if split not in SPLITS:
        raise ValueError(f"BFCL is held-out evaluation data: split {split!r} does not exist, only {SPLITS}")
    return BFCLEnv(tasks(categories), parser=parser, system_prompt=system_prompt)
