"""BFCL multi-turn through our env, checked against BFCL's own pipeline on the same raw outputs.

For each case the ground truth is played as the model's turns (Hermes text from
`FORMATTERS["hermes"]`: per user turn one message with all its calls, then one without a call that
ends the turn). Our env must (1) decode each step to exactly the call strings BFCL's Hermes handler
decodes from the same text, (2) reach the verdict BFCL's `_evaluate_single_multi_turn_entry` reaches
on the same raw per-turn, per-step outputs, and (3) pass every ground truth; perturbed sequences
must fail, with the same verdict on both sides. A stratified sample runs by default; the slow test
runs all 800 entries.
"""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from chord_env.envs import bfcl_multi_turn as mt
from chord_env.parsing import FORMATTERS

from bfcl_reference import load

PER_CATEGORY = 20


@pytest.fixture(scope="module")
def ref():
    return load()


def sample(category: str, n: int | None = PER_CATEGORY, seed: int = 0) -> list[mt.MultiTurnCase]:
    cases = mt.load_cases(category)
    if n is None:
        return cases
    keep = sorted(np.random.default_rng(seed).choice(len(cases), size=n, replace=False))
    return [cases[int(i)] for i in keep]


def play(case: mt.MultiTurnCase, actions: list[str]) -> tuple[mt.BFCLMultiTurnEnv, list[list[str]], dict]:
    """Step the env with `actions`; return it, the raw texts grouped per user turn, and the last info."""
    env = mt.BFCLMultiTurnEnv([mt.to_task(case)])
    env.reset(options={"task_index": 0})
    raw: list[list[str]] = [[]]
    info: dict = {}
    for action in actions:
        raw[-1].append(action)
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
        if info["turn"] != env.turn:  # the step ended a user turn
            raw.append([])
    return env, raw, info


def bfcl_verdict(ref, case: mt.MultiTurnCase, raw: list[list[str]]) -> dict:
    """BFCL's eval runner on the raw outputs (its Hermes decode, its checker)."""
    entry = copy.deepcopy(case.entry)
    name = f"bfcl_reference_{case.id}"
    try:
        return ref._evaluate_single_multi_turn_entry(ref.handler, case.id, raw, case.ground_truth, entry, name, case.category)
    finally:
        mt.release(name)


def bfcl_decoded(ref, raw: list[list[str]]) -> list[list[list[str]]]:
    """BFCL's decoding of the raw outputs, empty steps dropped (as `_evaluate_single_multi_turn_entry`)."""
    out = []
    for turn in raw:
        steps = []
        for text in turn:
            try:
                decoded = ref.handler.decode_execute(text, has_tool_call_tag=False)
            except Exception:
                continue
            if decoded and decoded != [""]:
                steps.append(decoded)
        out.append(steps)
    return out


def check_agreement(ref, case, actions) -> tuple[dict, dict]:
    env, raw, _ = play(case, actions)
    assert env.decoded == bfcl_decoded(ref, raw)
    ours, theirs = env.verdict, bfcl_verdict(ref, case, raw)
    assert ours is not None
    assert ours["correct"] == theirs["valid"], (case.id, ours, theirs.get("error"))
    if not ours["correct"]:
        assert ours["bfcl_error_type"] == theirs["error"]["error_type"]
    return ours, theirs


@pytest.mark.parametrize("category", mt.CATEGORIES)
def test_ground_truth_passes_and_agrees_with_bfcl(ref, category):
    for case in sample(category):
        ours, _ = check_agreement(ref, case, mt.expert_turns(case))
        assert ours["correct"], (case.id, ours)


def _drop_a_turn(case: mt.MultiTurnCase) -> list[str]:
    """The ground truth with the calls of its first non-empty turn left out (the turn is answered with text)."""
    actions = []
    dropped = False
    for calls in case.ground_truth:
        if calls and not dropped:
            dropped = True
            actions.append("I will not do that.")
            continue
        if calls:
            actions.append(FORMATTERS["hermes"]([mt.parse_call_string(c, case.entry["involved_classes"]) for c in calls]))
        actions.append("Done.")
    return actions


def _wrong_value(case: mt.MultiTurnCase) -> list[str] | None:
    """The ground truth with the first string argument of the last non-empty turn changed."""
    actions = []
    changed = False
    last = max(i for i, calls in enumerate(case.ground_truth) if calls)
    for i, calls in enumerate(case.ground_truth):
        parsed = [mt.parse_call_string(c, case.entry["involved_classes"]) for c in calls]
        if i == last:
            for call in parsed:
                key = next((k for k, v in call.arguments.items() if isinstance(v, str)), None)
                if key is not None:
                    call.arguments[key] = call.arguments[key] + "_perturbed"
                    changed = True
                    break
        if parsed:
            actions.append(FORMATTERS["hermes"](parsed))
        actions.append("Done.")
    return actions if changed else None


@pytest.mark.parametrize("category", mt.CATEGORIES)
def test_perturbed_sequences_fail_and_agree_with_bfcl(ref, category):
    wrong_value_failures = wrong_value_total = 0
    for case in sample(category):
        ours, _ = check_agreement(ref, case, _drop_a_turn(case))
        assert not ours["correct"] and ours["error_type"] == mt.EMPTY_TURN
        actions = _wrong_value(case)
        if actions is not None:
            ours, _ = check_agreement(ref, case, actions)
            wrong_value_total += 1
            wrong_value_failures += not ours["correct"]
    assert wrong_value_failures == wrong_value_total > 0


def _reformatted(case: mt.MultiTurnCase, how: str) -> list[str]:
    actions = []
    for text in mt.expert_turns(case):
        if how == "no_newlines":
            text = text.replace("<tool_call>\n", "<tool_call>").replace("\n</tool_call>", "</tool_call>")
        elif how == "string_arguments" and text.startswith("<tool_call>"):
            calls = [json.loads(block) for block in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text, re.S)]
            text = "\n".join(f'<tool_call>\n{json.dumps({**c, "arguments": json.dumps(c["arguments"])})}\n</tool_call>' for c in calls)
        actions.append(text)
    return actions


@pytest.mark.parametrize("category", mt.CATEGORIES)
def test_decoding_follows_bfcls_hermes_handler(ref, category):
    """BFCL's `decode_execute` takes arguments as a JSON string but not tags without their newlines."""
    for case in sample(category, 5):
        ours, _ = check_agreement(ref, case, _reformatted(case, "string_arguments"))
        assert ours["correct"]
        ours, _ = check_agreement(ref, case, _reformatted(case, "no_newlines"))
        assert not ours["correct"]


@pytest.mark.slow
@pytest.mark.parametrize("category", mt.CATEGORIES)
def test_every_ground_truth_passes(ref, category):
    for case in sample(category, None):
        ours, _ = check_agreement(ref, case, mt.expert_turns(case))
        assert ours["correct"], (case.id, ours)


def test_miss_func_adds_the_held_out_functions_at_their_turn():
    case = next(c for c in mt.load_cases("multi_turn_miss_func"))
    (turn, added), = case.missed.items()
    env = mt.BFCLMultiTurnEnv([mt.to_task(case)])
    _, info = env.reset(options={"task_index": 0})
    names = {t.name for t in info["tools"]}
    assert not names & {f["name"] for f in added}
    for _ in range(turn):
        observation, _, _, _, info = env.step("Nothing to call.")
    assert {t.name for t in info["tools"]} == names | {f["name"] for f in added}
    assert observation[0].role == "user" and "I have updated some more functions" in observation[0].content
    assert all(f["name"] in observation[0].content for f in added)


def test_unsafe_calls_are_not_evaluated(tmp_path):
    case = mt.load_cases("multi_turn_base")[0]
    env = mt.BFCLMultiTurnEnv([mt.to_task(case)])
    env.reset(options={"task_index": 0})
    target = tmp_path / "pwned"
    text = FORMATTERS["hermes"]([
        mt.ToolCall("open", {"file": str(target), "mode": "w"}),
        mt.ToolCall("__import__", {"name": "os"}),
        mt.ToolCall("ls", {"a=__import__('os').system('touch " + str(target) + "'),b": 1}),
        mt.ToolCall("ls", {}),
    ])
    observation, *_ = env.step(text)
    assert not target.exists()
    assert [m.content.startswith("Error during execution") for m in observation] == [True, True, True, False]
    assert env.decoded[0][0][:3] == [f"{mt.UNDEFINED}()"] * 3


def test_cached_backend_instances_are_released():
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    def cached() -> int:
        return sum(k.endswith("_instance") for k in vars(multi_turn_utils))

    before = cached()
    case = mt.load_cases("multi_turn_long_context")[0]
    env, _, info = play(case, mt.expert_turns(case))
    assert info["verdict"]["correct"] and cached() == before
    env.reset(options={"task_index": 0})
    assert cached() > before
    env.close()
    assert cached() == before


def test_runner_plays_the_conversation_turn_by_turn(smollm2_tokenizer):
    """The rollout runner drives an entry to BFCL's verdict with a backend that replays the ground truth."""
    from chord_env.agents.backend import Completion
    from chord_env.agents.evaluate import bfcl_multi_turn_suite, evaluate_multi_turn
    from chord_env.chat import ChatRenderer

    cases = [c for c in bfcl_multi_turn_suite() if c.id in ("multi_turn_base_0", "multi_turn_miss_func_1", "multi_turn_miss_param_2")]
    scripts = {c.id: iter(c.task.expert) for c in cases}
    end = smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")

    class Replay:
        def __init__(self):
            self.order = []

        def generate(self, prompts, params):
            out = []
            for p in prompts:
                text = smollm2_tokenizer.decode(p)
                case_id = next(c.id for c in cases if c.messages[-1].content in text)
                ids = smollm2_tokenizer(next(scripts[case_id]), add_special_tokens=False)["input_ids"] + [end]
                out.append([Completion(ids, [0.0] * len(ids), "stop")])
            return out

    results = evaluate_multi_turn(Replay(), ChatRenderer(smollm2_tokenizer), cases, max_context=32768, progress=False)
    assert [r.id for r in results] == [c.id for c in cases]
    assert all(r.verdicts[0]["correct"] for r in results), [r.verdicts[0] for r in results]
    assert all(next(scripts[c.id], None) is None for c in cases)  # every scripted turn was played


def test_eval_main_runs_the_multi_turn_suite(tmp_path, tiny_model_dir, smollm2_tokenizer):
    """`chord-env eval --suite bfcl-multi-turn --limit 1`: one entry per category, played and reported."""
    import json

    from chord_env.agents.backend import Completion
    from chord_env.agents.evaluate import main

    end = smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")

    class Chatty:
        def generate(self, prompts, params):
            ids = smollm2_tokenizer("I am not sure what to do.", add_special_tokens=False)["input_ids"] + [end]
            return [[Completion(ids, [0.0] * len(ids), "stop")] for _ in prompts]

        def close(self):
            pass

    paths = main([str(tiny_model_dir)], ["bfcl-multi-turn"], str(tmp_path), limit=1, backend_factory=lambda d: Chatty())
    cases = [json.loads(line) for line in open(tmp_path / tiny_model_dir.name / "cases.jsonl")]
    assert sorted(c["category"] for c in cases) == sorted(mt.CATEGORIES)
    assert all(c["verdicts"][0]["error_type"] == mt.EMPTY_TURN for c in cases)
    turns = {case.id: len(case.turns) for category in mt.CATEGORIES for case in mt.load_cases(category)}
    assert all(len(json.loads(c["outputs"][0])) == turns[c["id"]] for c in cases)  # one text per user turn
    assert mt.EMPTY_TURN in open(paths["report"]).read()
