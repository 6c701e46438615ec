"""Agreement: on saved real model outputs, our per-case BFCL verdicts equal BFCL's own pipeline's.

`data/bfcl_agreement_outputs.json` (written by `make_bfcl_agreement_data.py`) holds SmolLM2-135M's
greedy outputs on a stratified single-turn subset and a perturbed-ground-truth "model"'s outputs on
the same cases. Ours: the reward of `chord/BFCL-v0`'s env, stepped once with the output
(`bfcl_single_turn.BFCLEnv`: BFCL's Hermes decode, then `bfcl.score`, through its rubric). BFCL's:
its eval runner's `_evaluate_single_ast_entry` / `_evaluate_single_relevance_entry` with its Qwen FC
(Hermes) handler's `decode_ast` on the raw text, and the functions as its runner reads them,
taken verbatim from the installed source (`bfcl_reference`). Every verdict must agree.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest
from bfcl_reference import load

from chord_env.envs import bfcl
from chord_env.envs.bfcl_single_turn import BFCLEnv, to_task

DATA = Path(__file__).parent / "data" / "bfcl_agreement_outputs.json"


@lru_cache(maxsize=None)
def _cases(category: str) -> dict[str, tuple[bfcl.BFCLCase, dict]]:
    plain = bfcl.bfcl().load_dataset_entry(category, include_prereq=False, include_language_specific_hint=False)
    return {c.id: (c, e) for c, e in zip(bfcl.load_cases(category), plain)}


def ours(case: bfcl.BFCLCase, text: str) -> bool:
    """Whether the env rewards `text` as the reply to `case` (and calls it a success)."""
    env = BFCLEnv([to_task(case)])
    env.reset(options={"task_index": 0})
    _, reward, terminated, _, info = env.step(text)
    assert terminated and info["success"] == (reward == 1.0) == info["verdict"]["correct"]
    return info["success"]


def bfcl_valid(ref, case: bfcl.BFCLCase, entry: dict, text: str) -> bool:
    entry = copy.deepcopy(entry)
    if bfcl.is_relevance(case.category):
        result = ref._evaluate_single_relevance_entry(ref.handler, case.id, text, entry, ref.model_name, case.category)
    else:
        result = ref._evaluate_single_ast_entry(ref.handler, case.id, text, case.ground_truth, entry, ref.model_name,
                                                case.category, bfcl.language(case.category), ref.ReturnFormat.PYTHON)
    return bool(result["valid"])


def test_verdicts_equal_bfcls_own_on_real_outputs():
    ref = load()
    records = json.loads(DATA.read_text())["records"]
    assert len(records) >= 300
    disagreements, tally = [], Counter()
    for r in records:
        case, entry = _cases(r["category"])[r["id"]]
        mine = ours(case, r["output"])
        theirs = bfcl_valid(ref, case, entry, r["output"])
        tally[(r["model"], mine)] += 1
        if mine != theirs:
            disagreements.append((r["id"], r["model"], r["kind"], mine, theirs, r["output"][:200]))
    assert not disagreements, f"{len(disagreements)} of {len(records)} verdicts differ: {disagreements[:5]}"
    # both verdicts occur, for both models' outputs where it can (SmolLM2 may never pass)
    assert tally[("perturbed", True)] >= 50 and tally[("perturbed", False)] >= 50 and tally[("smollm2", False)] >= 100


@pytest.mark.parametrize("text", [
    "", "<tool_call>\n{\"name\": ", "x" * 100_000, "<tool_call>\n[1, 2]\n</tool_call>",
    "<tool_call>\n{\"name\": [\"f\"], \"arguments\": {}}\n</tool_call>", "<tool_call>\n" + "[" * 100_000 + "\n</tool_call>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>", "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{}\"}\n</tool_call>",
])
def test_bad_outputs_agree_too(text):
    ref = load()
    for category in ("simple_python", "parallel", "irrelevance"):
        case, entry = next(iter(_cases(category).values()))
        assert ours(case, text) == bfcl_valid(ref, case, entry, text)
