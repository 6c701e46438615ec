"""BFCL scorer validation through our full path: calls -> Hermes text -> our parser -> BFCL's checker.

Ground truth (each argument at its first allowed value) must score 100% in every single-turn
category except the few entries no answer can pass (listed with the reason); systematically
perturbed answers must score 0%.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest

from chord_env.envs import bfcl
from chord_env.parsing import FORMATTERS, PARSERS
from chord_env.types import ToolCall

UNSATISFIABLE = {
    "simple_java_36": "ArrayList<any>: BFCL converts every element to a string, the answer has an int and a bool",
    "simple_java_65": "ArrayList<any>: as simple_java_36",
    "live_simple_106-63-0": "a required array argument whose only allowed value is '' (BFCL's mark of 'omit')",
    "live_simple_112-68-0": "as live_simple_106-63-0",
    "live_multiple_862-181-3": "the answer needs an argument the function does not declare",
    "live_multiple_964-207-0": "a required argument the answer does not list",
}
CATEGORIES = ["simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
              "irrelevance", "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
              "live_irrelevance", "live_relevance"]


def run(case: bfcl.BFCLCase, calls: list[ToolCall], content: str = "") -> bfcl.Verdict:
    return bfcl.score(case, PARSERS["hermes"](FORMATTERS["hermes"](calls, content)))


def correct_calls(case: bfcl.BFCLCase) -> list[ToolCall]:
    if case.category == "live_relevance":
        return [ToolCall(case.tools[0].name, {})]
    return bfcl.ground_truth_calls(case)


def test_categories_are_bfcls_single_turn_ones():
    assert bfcl.single_turn_categories() == CATEGORIES


@pytest.mark.parametrize("category", CATEGORIES)
def test_ground_truth_scores_100_percent(category):
    cases = bfcl.load_cases(category)
    failed = {c.id: run(c, correct_calls(c)) for c in cases if not run(c, correct_calls(c)).correct}
    assert set(failed) <= set(UNSATISFIABLE), {k: v for k, v in failed.items() if k not in UNSATISFIABLE}
    assert len(cases) - len(failed) >= 0.98 * len(cases)


def _perturb_value(value):
    """A value BFCL does not allow in place of an allowed one (at the ground truth's level: a dict
    argument's allowed value is a dict of allowed lists)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7919.5
    if isinstance(value, str):
        return value + " zq9"
    if isinstance(value, list):
        return value + [copy.deepcopy(value[0]) if value else "zq9"]
    if isinstance(value, dict):
        return {**value, "zq9": ["zq9"]}
    return "zq9"


def _wrong_value(case: bfcl.BFCLCase) -> list[ToolCall] | None:
    """The answer with the first given argument of the first call changed to a value BFCL does not
    allow, before it is written as source (so Java and JavaScript values stay well formed)."""
    truth = copy.deepcopy(case.ground_truth)
    for answer in truth:
        for arguments in answer.values():
            for name, options in arguments.items():
                if options and options[0] != "":
                    arguments[name] = [_perturb_value(options[0])]
                    return bfcl.ground_truth_calls(dataclasses.replace(case, ground_truth=truth))
    return None


PERTURBATIONS = {
    "wrong_function": lambda case: [ToolCall(c.name + "_zq9", c.arguments) for c in bfcl.ground_truth_calls(case)],
    "missing_call": lambda case: bfcl.ground_truth_calls(case)[:-1],
    "extra_call": lambda case: bfcl.ground_truth_calls(case) * 2,
    "wrong_value": _wrong_value,
}


@pytest.mark.parametrize("category", [c for c in CATEGORIES if not bfcl.is_relevance(c)])
@pytest.mark.parametrize("kind", sorted(PERTURBATIONS))
def test_perturbed_answers_score_0_percent(category, kind):
    scored = 0
    for case in bfcl.load_cases(category):
        perturbed = PERTURBATIONS[kind](case)
        if perturbed is None:
            continue
        verdict = run(case, perturbed)
        assert not verdict.correct, (case.id, perturbed)
        assert verdict.error_type in bfcl.ERROR_TYPES
        scored += 1
    assert scored >= 0.95 * len(bfcl.load_cases(category))


@pytest.mark.parametrize("category", ["irrelevance", "live_irrelevance", "live_relevance"])
def test_relevance_categories(category):
    for case in bfcl.load_cases(category)[:50]:
        call = [ToolCall(case.tools[0].name, {})]
        no_call = run(case, [], "I cannot help with that using these functions.")
        with_call = run(case, call)
        if category == "live_relevance":
            assert with_call.correct and not no_call.correct and no_call.error_type == bfcl.NO_CALL
        else:
            assert no_call.correct and not with_call.correct and with_call.error_type == bfcl.HALLUCINATED_CALL


def _case(category: str, index: int = 0) -> bfcl.BFCLCase:
    return bfcl.load_cases(category)[index]


BAD_OUTPUTS = {
    "empty": ("", bfcl.NO_CALL),
    "prose": ("The answer is 42.", bfcl.NO_CALL),
    "truncated_json": ('<tool_call>\n{"name": "calculate_triangle_area", "arguments": {"base": 1', bfcl.UNPARSEABLE),
    "not_json": ("<tool_call>\ncalculate_triangle_area(base=10)\n</tool_call>", bfcl.UNPARSEABLE),
    "100kb": ("x" * 100_000, bfcl.NO_CALL),
    "100kb_in_call": ('<tool_call>\n{"name": "f", "arguments": {"a": "' + "y" * 100_000 + '"}}\n</tool_call>',
                      bfcl.WRONG_FUNCTION),
    "unoffered_function": ('<tool_call>\n{"name": "os.system", "arguments": {"cmd": "rm -rf /"}}\n</tool_call>',
                           bfcl.WRONG_FUNCTION),
    "arguments_not_object": ('<tool_call>\n{"name": "calculate_triangle_area", "arguments": [1, 2]}\n</tool_call>',
                             bfcl.UNPARSEABLE),
}


@pytest.mark.parametrize("name", sorted(BAD_OUTPUTS))
@pytest.mark.parametrize("category", ["simple_python", "parallel", "live_multiple", "simple_java", "simple_javascript"])
def test_bad_output_fails_with_its_error_type(name, category):
    text, error_type = BAD_OUTPUTS[name]
    verdict = bfcl.score(_case(category), PARSERS["hermes"](text))
    assert not verdict.correct
    assert verdict.error_type == error_type


def test_error_taxonomy_maps_bfcl_error_types():
    simple = _case("simple_python")  # calculate_triangle_area(base=10, height=5, unit optional)
    truth = bfcl.ground_truth_calls(simple)
    missing = [ToolCall(truth[0].name, {"base": 10})]
    wrong_type = [ToolCall(truth[0].name, {**truth[0].arguments, "base": "ten"})]
    unexpected = [ToolCall(truth[0].name, {**truth[0].arguments, "colour": "red"})]
    assert run(simple, missing).error_type == bfcl.MISSING_ARGUMENT
    assert run(simple, wrong_type).error_type == bfcl.WRONG_ARGUMENT_VALUE
    assert run(simple, unexpected).error_type == bfcl.WRONG_ARGUMENT_VALUE
    assert run(simple, truth + truth).error_type == bfcl.WRONG_CALL_COUNT
    parallel = _case("parallel")
    truth = bfcl.ground_truth_calls(parallel)
    dropped = [ToolCall(truth[0].name, {k: v for k, v in list(truth[0].arguments.items())[1:]})] + truth[1:]
    assert run(parallel, dropped).error_type == bfcl.MISSING_ARGUMENT
    malformed = PARSERS["hermes"](FORMATTERS["hermes"](truth[:1], "") + "\n<tool_call>\n{oops}\n</tool_call>")
    assert bfcl.score(parallel, malformed).error_type == bfcl.UNPARSEABLE


def test_tool_specs_are_json_schema_with_dotted_names():
    bfcl_only = {"dict", "float", "tuple", "any", "HashMap", "ArrayList", "String", "Boolean", "long", "double"}

    def types(schema):
        yield schema.get("type")
        for sub in schema.get("properties", {}).values():
            yield from types(sub)
        if isinstance(schema.get("items"), dict):
            yield from types(schema["items"])

    dotted = 0
    for category in CATEGORIES:
        for case in bfcl.load_cases(category):
            for spec, function in zip(case.tools, case.functions):
                assert spec.name == function["name"]
                dotted += "." in spec.name
                assert spec.parameters["type"] == "object"
                assert not bfcl_only & set(types(spec.parameters)), (case.id, spec.name)
    assert dotted > 100


def test_java_prompt_asks_for_source_strings_and_checker_keeps_java_types():
    case = _case("simple_java", 1)
    assert "Java 8 SDK syntax" in case.tools[0].description
    assert all(p["type"] == "string" for p in case.tools[0].parameters["properties"].values())
    assert case.functions[0]["parameters"]["properties"]["params"]["type"] == "HashMap"
