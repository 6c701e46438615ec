"""BFCL single-turn cases: loaded from `bfcl-eval`'s data, posed as chat prompts, scored by BFCL's checker.

A case is one BFCL entry: the question's messages, the category's functions as `ToolSpec`s, the
functions as BFCL's checker reads them, and the ground truth (the allowed values of each argument).

Prompts. The model sees what BFCL's generation step gives a function-calling model: the entry from
`load_dataset_entry` with BFCL's language hints (" Note that the provided function is in Python 3
syntax."; Java and JavaScript parameters become strings holding source code). BFCL's schemas spell
some JSON Schema types its own way ("dict", "float", "tuple", "any", Java's "HashMap"...); they are
mapped with BFCL's `GORILLA_TO_OPENAPI` table, recursively. Function names keep their dots
(`math.factorial`): our Hermes template writes any name, and the checker compares names verbatim.

Scoring mirrors `bfcl_eval/eval_checker/eval_runner.py` with BFCL's Hermes handler
(`model_handler/local_inference/qwen_fc.py`, whose `decode_ast` keeps the well-formed
`<tool_call>` blocks and drops the others):
- AST categories: the parsed calls, as `[{name: arguments}]`, go to
  `ast_checker(functions, output, ground_truth, language, category, model)`, the functions read
  without language hints (`_evaluate_single_ast_entry`);
- `irrelevance`, `live_irrelevance`: correct iff no call was decoded; `live_relevance`: correct iff
  at least one was (`_evaluate_single_relevance_entry`).

Decoding. `decode_hermes` is BFCL's own Hermes decode (`QwenFCHandler._extract_tool_calls` with
`decode_ast`, or `decode_execute` for multi-turn), stricter than our `parsing.parse_hermes`: only
`<tool_call>\n{json}\n</tool_call>` blocks count (newlines required), a block that is not JSON is
dropped, and an item that is not a call object fails the whole output. `chord-env eval` scores
Hermes outputs with it, so its verdicts are BFCL's on the same text (a test checks this on saved
real outputs); the training envs keep the lenient parser.

Every failure gets one type from `ERROR_TYPES`, derived from the calls and BFCL's own `error_type`
(kept verbatim in `Verdict.bfcl_error_type`): see `_classify`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chord_env.envs.bfcl_checker import MODEL_NAME, bfcl
from chord_env.parsing import ParseResult
from chord_env.types import Message, ToolCall, ToolSpec

NO_CALL = "no_call"
WRONG_FUNCTION = "wrong_function"
WRONG_CALL_COUNT = "wrong_call_count"
WRONG_ARGUMENT_VALUE = "wrong_argument_value"
MISSING_ARGUMENT = "missing_argument"
UNPARSEABLE = "unparseable"
HALLUCINATED_CALL = "hallucinated_call"
CHECKER_ERROR = "checker_error"
ERROR_TYPES = (
    NO_CALL,
    WRONG_FUNCTION,
    WRONG_CALL_COUNT,
    WRONG_ARGUMENT_VALUE,
    MISSING_ARGUMENT,
    UNPARSEABLE,
    HALLUCINATED_CALL,
    CHECKER_ERROR,
)
"""The failure taxonomy. `wrong_call_count`: the right functions, called too often or too rarely
(BFCL's `wrong_count`); `checker_error`: BFCL's checker raised on the output (it never did on the
shipped data, but a model's output is arbitrary)."""


@dataclass
class BFCLCase:
    """One single-turn BFCL entry."""

    id: str
    category: str
    messages: list[Message]
    tools: list[ToolSpec]
    functions: list[dict[str, Any]]
    """The functions as BFCL's checker reads them (no language hints, BFCL's type names)."""
    ground_truth: list[dict[str, dict[str, list[Any]]]] | None
    """`[{function: {argument: [allowed values]}}]`; None for (ir)relevance categories."""


@dataclass
class Verdict:
    """How one model output scored: correct or not, our error type, and BFCL's own."""

    correct: bool
    error_type: str | None = None
    bfcl_error_type: str | None = None
    detail: str = ""


def single_turn_categories() -> list[str]:
    """BFCL's single-turn categories (non-live, then live), as its `category_mapping` lists them."""
    return list(bfcl().categories["single_turn"])


def non_live_categories() -> list[str]:
    """BFCL's non-live single-turn categories."""
    return list(bfcl().categories["non_live"])


def is_relevance(category: str) -> bool:
    """Whether a category is scored by relevance alone (call or no call), as BFCL's runner decides."""
    return "relevance" in category


def language(category: str) -> Any:
    """BFCL's `Language` of a category's checker."""
    lang = bfcl().language
    return lang.JAVA if category.endswith("java") else lang.JAVASCRIPT if category.endswith("javascript") else lang.PYTHON


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A BFCL parameter schema with its type names mapped to JSON Schema ones, at every depth.

    A property without a type is a string, as in BFCL's `_cast_to_openai_type`.
    """
    out = dict(schema)
    out["type"] = bfcl().type_to_json_schema.get(out.get("type", "string"), "string")
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: to_json_schema(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = to_json_schema(out["items"])
    return out


def to_tool_spec(function: dict[str, Any]) -> ToolSpec:
    """A BFCL function document as a `ToolSpec` (dotted name kept)."""
    parameters = to_json_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    return ToolSpec(function["name"], function.get("description", ""), parameters)


@lru_cache(maxsize=None)
def _load(category: str) -> tuple[BFCLCase, ...]:
    b = bfcl()
    prompted = b.load_dataset_entry(category, include_prereq=False, include_language_specific_hint=True)
    checked = b.load_dataset_entry(category, include_prereq=False, include_language_specific_hint=False)
    answers = None if is_relevance(category) else b.load_ground_truth_entry(category)
    cases = []
    for i, (entry, plain) in enumerate(zip(prompted, checked)):
        if len(entry["question"]) != 1:
            raise ValueError(f"BFCL entry {entry['id']} has {len(entry['question'])} turns; single-turn expected")
        cases.append(
            BFCLCase(
                id=entry["id"],
                category=category,
                messages=[Message.from_openai(m) for m in entry["question"][0]],
                tools=[to_tool_spec(f) for f in entry["function"]],
                functions=plain["function"],
                ground_truth=None if answers is None else answers[i]["ground_truth"],
            )
        )
    return tuple(cases)


def load_cases(category: str) -> list[BFCLCase]:
    """Every case of one single-turn category, in BFCL's order (loaded once per process)."""
    if category not in single_turn_categories():
        raise ValueError(f"unknown BFCL single-turn category {category!r}; choose from {single_turn_categories()}")
    return list(_load(category))


_BFCL_HERMES_BLOCK = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)


def decode_hermes(text: str, execute: bool = False) -> ParseResult:
    """The calls BFCL's Hermes handler decodes from `text` (`decode_ast`; with `execute`,
    `decode_execute`, which also takes `arguments` given as a JSON string). Never raises: where
    BFCL's decoder raises, the result has no calls and an error."""
    items, bad = [], 0
    for block in _BFCL_HERMES_BLOCK.findall(text):
        try:
            items.append(json.loads(block))
        except Exception:  # as BFCL's `_extract_tool_calls` (RecursionError included)
            bad += 1
    content = _BFCL_HERMES_BLOCK.sub("", text).strip()
    error = f"{bad} <tool_call> block(s) are not valid JSON" if bad else None
    if error is None and not items and "<tool_call>" in text:
        error = "a <tool_call> not written as <tool_call>\n{json}\n</tool_call>"
    calls = []
    try:
        for item in items:
            if type(item) is not dict:
                raise ValueError("a <tool_call> block is not a JSON object")
            arguments, _ = item["arguments"], hash(item["name"])  # BFCL keys a dict by the name
            if execute and type(arguments) is str:
                arguments = json.loads(arguments)
            calls.append(ToolCall(item["name"], {k: v for k, v in arguments.items()}))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return ParseResult([], content, f"not a list of calls ({type(e).__name__}: {e})")
    return ParseResult(calls, content, error)


def to_bfcl_output(calls: list[ToolCall]) -> list[dict[str, dict[str, Any]]]:
    """Parsed calls in the shape BFCL's decoders return: `[{name: {argument: value}}]`."""
    return [{c.name: dict(c.arguments)} for c in calls]


def score(case: BFCLCase, parsed: ParseResult) -> Verdict:
    """Score one parsed model output with BFCL's rules; never raises."""
    calls = parsed.calls
    if is_relevance(case.category):
        if "irrelevance" in case.category:
            return Verdict(True) if not calls else Verdict(False, HALLUCINATED_CALL, "irrelevance_error:decoder_success")
        if calls:
            return Verdict(True)
        return Verdict(False, UNPARSEABLE if parsed.error else NO_CALL, "relevance_error:decoder_failed", parsed.error or "")
    b = bfcl()
    try:
        result = b.ast_checker(
            case.functions, to_bfcl_output(calls), case.ground_truth, language(case.category), case.category, MODEL_NAME
        )
    except Exception as e:  # BFCL's checker on arbitrary output: a failed case, never a crashed run
        return Verdict(False, CHECKER_ERROR, None, f"{type(e).__name__}: {e}")
    if result["valid"]:
        return Verdict(True)
    detail = "; ".join(str(e) for e in result.get("error", []) if isinstance(e, str))
    return Verdict(False, _classify(case, parsed, result), result.get("error_type"), (parsed.error or detail)[:500])


def _classify(case: BFCLCase, parsed: ParseResult, result: dict[str, Any]) -> str:
    """Our error type for a failed AST check.

    No call at all: `unparseable` if the text held a malformed call, else `no_call`. Some calls but a
    malformed one too: `unparseable` (the dropped call is the likely cause). Otherwise the called
    names decide first (a name not expected: `wrong_function`; the expected names, wrong
    multiplicity: `wrong_call_count`), then BFCL's error type: `missing_*` -> `missing_argument`,
    anything else (type, value, unexpected parameter) -> `wrong_argument_value`. For parallel
    categories BFCL reports the sub-errors of each unmatched output; the first that is not a name
    mismatch is used.
    """
    if not parsed.calls or parsed.error:
        return UNPARSEABLE if parsed.error else NO_CALL
    expected = Counter(name for answer in case.ground_truth or [] for name in answer)
    called = Counter(c.name for c in parsed.calls)
    if called != expected:
        return WRONG_FUNCTION if set(called) != set(expected) else WRONG_CALL_COUNT
    error_type = result.get("error_type", "")
    for item in result.get("error", []):
        if isinstance(item, dict):
            sub = next(iter(item.values()), {}).get("sub_error_type", "")
            if not sub.endswith("wrong_func_name"):
                error_type = sub
                break
    return MISSING_ARGUMENT if "missing" in error_type.split(":")[-1] else WRONG_ARGUMENT_VALUE


def ground_truth_calls(case: BFCLCase) -> list[ToolCall]:
    """The calls of a correct answer: each argument at its first allowed value, written as the model
    must write it (Java and JavaScript values as source code strings, as BFCL's hints ask).

    "" among the allowed values marks an optional argument: one whose first allowed value is "" is
    left out, unless the function requires it (then its first other value is used, or "" if it has
    none), and so is an optional one the function does not declare (a few entries list such). A dict
    argument's allowed values are dicts of allowed lists, a list-of-dicts argument's are lists of
    those; both take the first allowed value of each key, as `dict_checker` reads them.
    """
    functions = {f["name"]: f["parameters"] for f in case.functions}
    calls = []
    for answer in case.ground_truth or []:
        for name, arguments in answer.items():
            declared = functions.get(name, {}).get("properties", {})
            required = functions.get(name, {}).get("required", [])
            values = {}
            for arg, options in arguments.items():
                given = [o for o in options if o != ""]
                if arg not in required and "" in options and (options[0] == "" or arg not in declared):
                    continue
                schema = declared.get(arg, {})
                value = _first_allowed(given[0]) if given else ""
                values[arg] = _as_source(value, schema.get("type"), schema.get("items", {}).get("type"), case.category)
            calls.append(ToolCall(name, values))
    return calls


def _first_allowed(value: Any) -> Any:
    def first_of_each(d: dict[str, list[Any]]) -> dict[str, Any]:
        return {k: o[0] for k, o in d.items() if o and o[0] != ""}

    if isinstance(value, dict):
        return first_of_each(value)
    if isinstance(value, list) and value and all(isinstance(d, dict) for d in value):
        return [first_of_each(d) for d in value]
    return value


def _as_source(value: Any, type_: str | None, item_type: str | None, category: str) -> Any:
    """`value` as BFCL's Java/JavaScript type converters read it back; Python values unchanged."""
    if category.endswith("java"):
        return _java(value, type_, item_type)
    if category.endswith("javascript"):
        return _js(value, type_, item_type)
    return value


def _java_untyped(v: Any) -> str:
    """Inverse of BFCL's `parse_java_value`."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return f'"{v}"' if isinstance(v, str) else str(v)


def _java(v: Any, type_: str | None, item_type: str | None) -> str:
    """Inverse of BFCL's `java_type_converter` (`ast_eval/type_convertor/java_type_converter.py`)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if type_ == "long":
        return f"{v}L"
    if type_ == "float":
        return f"{v}f"
    if type_ == "Array":
        return "new Object[]{" + ", ".join(_java(x, item_type, None) if item_type else _java_untyped(x) for x in v) + "}"
    if type_ == "ArrayList":
        typed = item_type not in (None, "any", "String", "char")
        items = ", ".join(_java(x, item_type, None) if typed else _java_untyped(x) for x in v)
        return f"new ArrayList<>(Arrays.asList({items}))"
    if type_ == "HashMap":
        puts = " ".join(f'put("{k}", {_java_untyped(x)});' for k, x in v.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return str(v)


def _js_untyped(v: Any) -> str:
    """Inverse of BFCL's `parse_js_value`, with arrays and objects written literally."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_js_untyped(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_js_untyped(x)}" for k, x in v.items()) + "}"
    return f'"{v}"' if isinstance(v, str) else str(v)


def _js(v: Any, type_: str | None, item_type: str | None) -> str:
    """Inverse of BFCL's `js_type_converter` (`ast_eval/type_convertor/js_type_converter.py`)."""
    if isinstance(v, str):
        return v
    if type_ == "Bigint":
        return f"{v}n"
    return _js_untyped(v)
