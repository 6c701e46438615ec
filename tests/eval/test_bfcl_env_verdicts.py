"""BFCL single-turn scored through its env gives, case by case, the verdicts of the scorer it replaced.

`data/bfcl_verdicts_before_env.json` holds the full verdict dicts of the old path
(`agents.evaluate.bfcl_check` at commit 6bcfdd2: decode the text, then `bfcl.score`, outside any env)
on every recorded output of `data/bfcl_agreement_outputs.json` (SmolLM2's greedy outputs and the
perturbed ground truths) and on `BAD_OUTPUTS` as the reply to the first case of every single-turn
category. The env path must give the same dict for every one: `EvalCase.check` (a `BFCLEnv` stepped
once) and `evaluate` (the rollout runner playing the env, with a backend that replies the text).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chord_env.agents.backend import Completion, SamplingParams
from chord_env.agents.evaluate import bfcl_suite, evaluate
from chord_env.chat import ChatRenderer
from chord_env.envs import bfcl

DATA_IN = Path(__file__).parent / "data" / "bfcl_agreement_outputs.json"
OUT = Path(__file__).parent / "data" / "bfcl_verdicts_before_env.json"
BAD_OUTPUTS = [
    "", "<tool_call>\n{\"name\": ", "x" * 100_000, "<tool_call>\n[1, 2]\n</tool_call>",
    "<tool_call>\n{\"name\": [\"f\"], \"arguments\": {}}\n</tool_call>", "<tool_call>\n" + "[" * 100_000 + "\n</tool_call>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>", "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{}\"}\n</tool_call>",
    "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", "Sure.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>",
]


@pytest.fixture(scope="module")
def before():
    return json.loads(OUT.read_text())


@pytest.fixture(scope="module")
def records():
    return json.loads(DATA_IN.read_text())["records"]


@pytest.fixture(scope="module")
def cases():
    return {c.id: c for c in bfcl_suite()}


def test_the_env_gives_the_old_verdict_on_every_recorded_output(before, records, cases):
    assert len(records) == len(before["records"]) >= 300
    now = [cases[r["id"]].check(r["output"]) for r in records]
    differ = [(r["id"], r["model"], old, new) for r, old, new in zip(records, before["records"], now) if new != old]
    assert not differ, f"{len(differ)} verdicts differ: {differ[:3]}"
    assert {v["correct"] for v in before["records"]} == {True, False}


def test_the_env_gives_the_old_verdict_on_bad_outputs(before):
    assert set(before["bad_outputs"]) == set(bfcl.single_turn_categories())
    for category, verdicts in before["bad_outputs"].items():
        case = bfcl_suite([category])[0]
        assert [case.check(text) for text in BAD_OUTPUTS] == verdicts, category


class Replies:
    """A backend that answers each prompt with the text `replies` holds for its token ids."""

    def __init__(self, tokenizer, replies: dict[tuple[int, ...], str]):
        self.tokenizer, self.replies = tokenizer, replies
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def generate(self, prompts, params):
        out = []
        for p in prompts:
            ids = self.tokenizer(self.replies[tuple(p)], add_special_tokens=False)["input_ids"] + [self.end]
            out.append([Completion(ids, [0.0] * len(ids), "stop")])
        return out


@pytest.mark.parametrize("model", ["smollm2", "perturbed"])
def test_the_runner_playing_the_env_gives_the_old_verdicts(before, records, cases, smollm2_tokenizer, model):
    renderer = ChatRenderer(smollm2_tokenizer)
    mine = [(r, old) for r, old in zip(records, before["records"]) if r["model"] == model]
    played = [cases[r["id"]] for r, _ in mine]
    replies = {tuple(renderer.encode(c.messages, c.tools)): r["output"] for c, (r, _) in zip(played, mine)}
    results = evaluate(Replies(smollm2_tokenizer, replies), renderer, played, SamplingParams(temperature=0.0, max_tokens=4096),
                       progress=False)
    assert [r.id for r in results] == [c.id for c in played]
    assert [r.outputs for r in results] == [[r["output"]] for r, _ in mine]
    assert [r.verdicts for r in results] == [[old] for _, old in mine]
