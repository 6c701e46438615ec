"""Report statistics: Wilson intervals, unbiased pass@k, BFCL's summary scores, and the written files."""

from __future__ import annotations

import json
import math
from itertools import combinations
from types import SimpleNamespace

import pytest

from chord_env.envs.bfcl_checker import bfcl
from chord_env.report import bfcl_summary, pass_at_k, wilson_interval, write_report


def test_wilson_interval_matches_published_values():
    # Brown, Cai & DasGupta (2001) example: 0 of 10 -> [0, 0.278]; 5 of 10 -> [0.237, 0.763]
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 2, 1), (5, 2, 2), (6, 3, 4), (10, 9, 3), (4, 4, 4)])
def test_pass_at_k_is_the_probability_a_k_subset_holds_a_correct_sample(n, c, k):
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(samples, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_bfcl_summary_mirrors_bfcls_own_helpers():
    bfcl()
    from bfcl_eval.eval_checker.eval_runner_helper import calculate_unweighted_accuracy, calculate_weighted_accuracy

    tally = {"simple_python": (300, 400), "simple_java": (50, 100), "simple_javascript": (10, 50),
             "multiple": (150, 200), "parallel": (120, 200), "parallel_multiple": (90, 200),
             "irrelevance": (200, 240), "live_simple": (150, 258), "live_multiple": (500, 1053),
             "live_parallel": (5, 16), "live_parallel_multiple": (6, 24), "live_irrelevance": (700, 884),
             "live_relevance": (12, 16)}
    score = {k: {"accuracy": c / n, "total_count": n, "display_accuracy": c / n} for k, (c, n) in tally.items()}
    simple = calculate_unweighted_accuracy([score[c] for c in ("simple_python", "simple_java", "simple_javascript")])
    non_live = calculate_unweighted_accuracy([simple] + [score[c] for c in ("multiple", "parallel", "parallel_multiple")])
    live = calculate_weighted_accuracy([score[c] for c in ("live_simple", "live_multiple", "live_parallel",
                                                           "live_parallel_multiple")])
    hallucination = calculate_unweighted_accuracy([score["irrelevance"], score["live_irrelevance"]])
    ours = bfcl_summary(tally)
    assert ours["non_live"]["accuracy"] == pytest.approx(non_live["accuracy"])
    assert ours["live"]["accuracy"] == pytest.approx(live["accuracy"])
    assert ours["hallucination"]["accuracy"] == pytest.approx(hallucination["accuracy"])
    overall = (non_live["accuracy"] + live["accuracy"] + hallucination["accuracy"]) / 3
    assert ours["single_turn_overall"]["accuracy"] == pytest.approx(overall)
    assert all(s["complete"] for s in ours.values())
    del tally["simple_java"]
    assert not bfcl_summary(tally)["non_live"]["complete"]


def _result(suite, category, correct, error_type=None, n=1):
    verdicts = [{"correct": correct, "error_type": None if correct else error_type}] * n
    return SimpleNamespace(suite=suite, category=category, verdicts=verdicts, num_correct=correct * n,
                           to_json=lambda: {"category": category, "verdicts": verdicts})


def test_write_report(tmp_path):
    results = {
        "a": [_result("bfcl-single", "simple_python", True), _result("bfcl-single", "simple_python", False, "no_call"),
              _result("math", "arithmetic", True, n=4), _result("math", "arithmetic", False, "wrong_answer", n=4)],
        "b": [_result("bfcl-single", "simple_python", False, "wrong_function")],
    }
    paths = write_report(results, tmp_path)
    text = paths["report"].read_text()
    assert "| simple_python | 50.0 [" in text and "(n=2)" in text
    assert "| pass@1 | 50.0 | - |" in text
    assert "| no_call | 1 | 0 |" in text and "| wrong_function | 0 | 1 |" in text
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(paths["summary"].read_text())
    assert summary["a"]["math"] == {"pass@1": 0.5}
    assert math.isclose(summary["b"]["categories"]["simple_python"]["ci95"][1], wilson_interval(0, 1)[1])
    assert len((tmp_path / "a" / "cases.jsonl").read_text().splitlines()) == 4


def test_multi_turn_cases_get_their_own_table():
    from chord_env.agents.evaluate import CaseResult
    from chord_env.report import markdown

    def case(category, correct):
        return CaseResult("bfcl-multi-turn", category, f"{category}_{correct}", [], ["x"], [{"correct": correct, "error_type": None if correct else "state_mismatch"}])

    results = {"m": [case("multi_turn_base", True), case("multi_turn_base", False), case("multi_turn_miss_func", True)]}
    text = markdown(results)
    assert "## BFCL multi-turn" in text
    assert "| multi_turn_base | 50.0" in text and "| multi_turn_miss_func | 100.0" in text
    assert "| mean of categories | 75.0 |" in text
