"""The evaluation driver over the Backend protocol, with a scripted fake backend and the real tokenizer."""

from __future__ import annotations

import json
from collections import Counter

from chord_env.agents.backend import Completion, SamplingParams
from chord_env.agents.evaluate import bfcl_suite, evaluate, main, math_suite, stratified_subset
from chord_env.chat import ChatRenderer
from chord_env.envs import bfcl
from chord_env.envs.math_heldout import EVAL_SEED_BASE, heldout_math_tasks
from chord_env.envs.math_verify_pool import VerifierPool
from chord_env.parsing import format_hermes


class ScriptedBackend:
    """Answers each prompt with the text `reply(prompt_text)` returns, followed by <|im_end|>."""

    def __init__(self, tokenizer, reply):
        self.tokenizer, self.reply, self.calls = tokenizer, reply, []

    def generate(self, prompts, params):
        self.calls.append(params)
        end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        out = []
        for p in prompts:
            text = self.reply(self.tokenizer.decode(p))
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [end]
            out.append([Completion(ids, [0.0] * len(ids), "stop") for _ in range(params.n)])
        return out

    def update_weights(self, model):
        pass

    def close(self):
        pass


def _truth_by_question():
    table = {}
    for category in bfcl.single_turn_categories():
        for case in bfcl.load_cases(category):
            if not bfcl.is_relevance(case.category):
                table[case.messages[-1].content] = format_hermes(bfcl.ground_truth_calls(case))
    return table


def test_stratified_subset_is_seeded_and_per_category():
    cases = bfcl_suite()
    a, b, c = stratified_subset(cases, 3, seed=1), stratified_subset(cases, 3, seed=1), stratified_subset(cases, 3, seed=2)
    assert [x.id for x in a] == [x.id for x in b] != [x.id for x in c]
    assert set(Counter(x.category for x in a).values()) == {3}
    assert len(a) == 3 * len(bfcl.single_turn_categories())


def test_evaluate_scores_ground_truth_through_the_backend(smollm2_tokenizer):
    truth = _truth_by_question()

    def reply(prompt_text):
        question = next((q for q in truth if q and prompt_text.endswith(q + "<|im_end|>\n<|im_start|>assistant\n")), None)
        return truth[question] if question else "No function fits this request."

    cases = stratified_subset(bfcl_suite(), 2, seed=0)
    backend = ScriptedBackend(smollm2_tokenizer, reply)
    results = evaluate(backend, ChatRenderer(smollm2_tokenizer), cases, SamplingParams(temperature=0.0), batch_size=8,
                       progress=False)
    wrong = {r.id: r.verdicts[0] for r in results if not r.verdicts[0]["correct"]}
    assert set(wrong) <= {c.id for c in cases if c.category == "live_relevance"}
    assert all(w["error_type"] == bfcl.NO_CALL for w in wrong.values())
    assert smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>") in backend.calls[0].stop_token_ids
    assert all(r.outputs and not r.outputs[0].endswith("<|im_end|>") for r in results)
    assert [r.verdicts[0] for r in results] == [c.check(r.outputs[0]) for r, c in zip(results, cases)]  # one scorer


def test_suites_are_played_in_their_registered_envs():
    import chord_env
    from chord_env.envs.bfcl_single_turn import BFCLEnv
    from chord_env.envs.math_env import MathEnv

    bfcl_case = bfcl_suite(["simple_python"])[0]
    registered = chord_env.make("chord/BFCL-v0").unwrapped
    assert isinstance(bfcl_case.env(), BFCLEnv) and type(registered) is BFCLEnv
    opening, info = registered.reset(options={"task_index": 0})
    assert (opening, info["tools"], info["task_id"]) == (bfcl_case.messages, bfcl_case.tools, bfcl_case.id)
    math_case = math_suite(1, VerifierPool(processes=1))[0]
    registered = chord_env.make("chord/ArithmeticHeldOut-v0", n=1).unwrapped
    assert isinstance(math_case.env(), MathEnv) and type(registered) is MathEnv
    opening, info = registered.reset(seed=0)
    assert (opening, info["task_id"]) == (math_case.messages, math_case.id)


def test_prompts_over_the_limit_fail_without_generation(smollm2_tokenizer):
    cases = stratified_subset(bfcl_suite(["live_multiple"]), 4, seed=0)
    backend = ScriptedBackend(smollm2_tokenizer, lambda _: "")
    results = evaluate(backend, ChatRenderer(smollm2_tokenizer), cases, SamplingParams(), max_prompt_tokens=10,
                       progress=False)
    assert backend.calls == [] and {r.verdicts[0]["error_type"] for r in results} == {"prompt_too_long"}


def test_math_heldout_seeds_and_pass_at_k(smollm2_tokenizer):
    tasks = heldout_math_tasks(3)
    assert tasks == heldout_math_tasks(5)[:3]
    assert [t.id for t in tasks] != [t.id for t in heldout_math_tasks(3, seed_base=EVAL_SEED_BASE + 3)]
    answers = {t.prompt: t.answer for t in tasks}

    def reply(prompt_text):
        question = next(q for q in answers if q in prompt_text)
        return f"So the answer is $\\boxed{{{answers[question]}}}$." if question != tasks[0].prompt else "I do not know."

    pool = VerifierPool(processes=1)
    try:
        results = evaluate(ScriptedBackend(smollm2_tokenizer, reply), ChatRenderer(smollm2_tokenizer),
                           math_suite(3, pool), SamplingParams(n=2), progress=False)
    finally:
        pool.close()
    assert [r.num_correct for r in results] == [0, 2, 2]


def test_eval_main_writes_the_report(tmp_path, smollm2_cache, smollm2_tokenizer):
    backends = []

    def factory(model_dir):
        backends.append(ScriptedBackend(smollm2_tokenizer, lambda _: "Sorry."))
        return backends[-1]

    paths = main([str(smollm2_cache), str(smollm2_cache)], ["bfcl-single", "math"], str(tmp_path), limit=1,
                 math_problems=2, backend_factory=factory)
    assert len(backends) == 2 and backends[0].calls[0].temperature == 0.0
    report = open(paths["report"]).read()
    assert "smollm2-tokenizer-0" in report and "single_turn_overall" in report and "pass@1" in report
    cases = [json.loads(line) for line in open(tmp_path / "smollm2-tokenizer-1" / "cases.jsonl")]
    assert len(cases) == len(bfcl.single_turn_categories()) + 1
    assert {"prompt", "outputs", "verdicts"} <= set(cases[0])
