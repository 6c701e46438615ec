"""Tool-call parsers: known cases, round trips with the formatters, fuzzing and pathological input."""

from __future__ import annotations

import keyword
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chord_env.parsing import (
    MAX_CHARS,
    PARSERS,
    ParseResult,
    format_hermes,
    format_json,
    format_pythonic,
    parse_hermes,
    parse_json,
    parse_pythonic,
)
from chord_env.types import ToolCall

FORMATTERS = {"hermes": format_hermes, "json": format_json, "pythonic": format_pythonic}
# Generous per-example deadline: catches hangs, not a loaded 2-core machine's hiccups.
FUZZ = settings(
    max_examples=2000,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def assert_well_formed(result: object) -> None:
    assert isinstance(result, ParseResult)
    assert isinstance(result.content, str)
    assert result.error is None or (isinstance(result.error, str) and result.error)
    for call in result.calls:
        assert isinstance(call, ToolCall)
        assert isinstance(call.name, str) and call.name
        assert isinstance(call.arguments, dict)


# ---- known cases ---------------------------------------------------------------------------


def test_hermes_several_calls_with_content_and_whitespace():
    text = (
        "Let me look.\n<tool_call>\n  {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}  \n"
        "</tool_call>\n<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>\nDone."
    )
    result = parse_hermes(text)
    assert result.calls == [ToolCall("get_weather", {"city": "Paris"}), ToolCall("f", {"x": 1})]
    assert result.content == "Let me look.\n\n\nDone."
    assert result.error is None


def test_hermes_errors_keep_the_valid_calls():
    text = (
        '<tool_call>{"name": "ok", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "f", "arguments": {"a": 1 "b": 2}}</tool_call>'
        '<tool_call>{"arguments": {}}</tool_call>'
        '<tool_call>{"name": "g", "arguments": [1]}</tool_call>'
        '<tool_call>{"name": "h", "arguments": {}}'
    )
    result = parse_hermes(text)
    assert result.calls == [ToolCall("ok", {})]
    assert result.error == (
        "invalid JSON in <tool_call> #2: Expecting ',' delimiter at char 35; "
        "bad call in <tool_call> #3: missing function name; "
        "bad call in <tool_call> #4: arguments must be an object, got list; "
        "unclosed <tool_call> #5"
    )


def test_hermes_close_tag_inside_an_argument_string():
    call = ToolCall("echo", {"text": "</tool_call><tool_call>"})
    assert parse_hermes(format_hermes([call])).calls == [call]


def test_hermes_no_calls_is_plain_content():
    assert parse_hermes("  just text  ") == ParseResult([], "just text", None)


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "f", "parameters": {"a": 1}}',
        'Sure:\n```json\n[{"name": "f", "arguments": {"a": 1}}]\n```',
        '{"type": "function", "function": {"name": "f", "arguments": "{\\"a\\": 1}"}}',
        'I think {"answer": 2} but {"name": "f", "arguments": {"a": 1}}',
    ],
)
def test_json_shapes(text):
    result = parse_json(text)
    assert result.calls == [ToolCall("f", {"a": 1})]
    assert result.error is None
    assert "```" not in result.content


def test_json_not_call_shaped_is_content():
    for text in ['{"answer": 42}', "[1, 2, 3]", "{not json at all}", "a [ b { c"]:
        assert parse_json(text) == ParseResult([], text, None)


def test_json_broken_call_is_an_error():
    result = parse_json('{"name": "f", "arguments": {"a": 1}')
    assert result.calls == []
    assert result.error.startswith("invalid JSON in tool call #1: Expecting ',' delimiter")
    assert parse_json('[{"name": "f", "arguments": {}}, {"name": 3}]').error == (
        "bad tool call #2: missing function name"
    )


def test_json_refuses_nan():
    assert parse_json('{"name": "f", "arguments": {"a": NaN}}').error is not None


def test_pythonic_list_bare_dotted_and_fenced():
    result = parse_pythonic("[get_weather(city='Paris'), math.factorial(n=-5, t=(1, 2), d={'k': None})]")
    assert result.calls == [
        ToolCall("get_weather", {"city": "Paris"}),
        ToolCall("math.factorial", {"n": -5, "t": [1, 2], "d": {"k": None}}),
    ]
    assert parse_pythonic("f(x=1.5, y=True)").calls == [ToolCall("f", {"x": 1.5, "y": True})]
    assert parse_pythonic("f(x=1), g(y=2)").calls == [ToolCall("f", {"x": 1}), ToolCall("g", {"y": 2})]
    fenced = parse_pythonic("Calling:\n```python\n[f(x=1)]\n```\nbye")
    assert fenced == ParseResult([ToolCall("f", {"x": 1})], "Calling:\nbye", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("f(1)", "positional"),
        ("[f(x=y)]", "not a literal"),
        ("f(x=__import__('os').system('true'))", "not a literal"),
        ("f(**{'a': 1})", "** arguments"),
        ("f(x={1, 2})", "unsupported value"),
        ("f(x=1e999)", "not a valid JSON number"),
        ("f(x=1,", "invalid Python call syntax"),
        ("[f(x=1), 3]", "not a function call"),
        ("f()(x=1)", "(dotted) name"),
    ],
)
def test_pythonic_errors(text, message):
    result = parse_pythonic(text)
    assert result.error is not None and message in result.error


def test_pythonic_prose_is_content():
    assert parse_pythonic("The answer is 4.") == ParseResult([], "The answer is 4.", None)


@pytest.mark.parametrize("fmt", list(PARSERS))
def test_no_calls_formats_as_the_content(fmt):
    assert FORMATTERS[fmt]([], "Hello.") == "Hello."
    assert PARSERS[fmt]("Hello.") == ParseResult([], "Hello.", None)


def test_formatters_refuse_what_they_cannot_write():
    with pytest.raises(ValueError):
        format_pythonic([ToolCall("my-tool", {})])
    with pytest.raises(ValueError):
        format_pythonic([ToolCall("f", {"class": 1})])


# ---- round trips ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=6,
)
identifiers = st.builds(
    str.__add__,
    st.sampled_from("abcxyzAB_"),
    st.text(alphabet="abcdefxyz_0189", max_size=8),
).filter(lambda s: not keyword.iskeyword(s))
dotted_names = st.lists(identifiers, min_size=1, max_size=3).map(".".join)
# Prose that none of the parsers reads as a call: no brackets, tags, fences or parentheses.
contents = st.text(alphabet=st.characters(blacklist_characters="<>{}[]()`\r", codec="utf-8"), max_size=60)


def calls_for(fmt: str) -> st.SearchStrategy[list[ToolCall]]:
    names = dotted_names if fmt == "pythonic" else st.text(min_size=1, max_size=20)
    keys = identifiers if fmt == "pythonic" else st.text(max_size=10)
    call = st.builds(ToolCall, name=names, arguments=st.dictionaries(keys, json_values, max_size=4))
    return st.lists(call, min_size=1, max_size=4)


@pytest.mark.parametrize("fmt", list(PARSERS))
@settings(max_examples=500, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(fmt, data):
    calls = data.draw(calls_for(fmt))
    content = data.draw(contents)
    result = PARSERS[fmt](FORMATTERS[fmt](calls, content))
    assert result == ParseResult(calls, content.strip(), None)


# ---- fuzzing -------------------------------------------------------------------------------

NOISE = "<>/{}[]()\"',:=.\\ \n\t_-0123456789abcfnrtu`\x00é😀\ud800"


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` after a few random edits: insert, delete, replace, truncate, duplicate a slice."""
    for _ in range(draw(st.integers(1, 5))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, n))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        noise = draw(st.text(alphabet=NOISE, min_size=1, max_size=3))
        if op == "insert":
            text = text[:i] + noise + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "replace":
            text = text[:i] + noise + text[i + len(noise) :]
        elif op == "truncate":
            text = text[:i]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@FUZZ
@given(st.text(max_size=300) | st.text(alphabet=NOISE, max_size=300))
def test_fuzz_random_text(text):
    for parse in PARSERS.values():
        assert_well_formed(parse(text))


# Cheaper calls than `calls_for` (the mutations matter here, not rich values).
fuzz_values = (
    st.none() | st.booleans() | st.integers(-99, 99) | st.text(max_size=6) | st.lists(st.integers(0, 9), max_size=3)
)
fuzz_calls = st.lists(
    st.builds(
        ToolCall,
        name=st.sampled_from(["get_weather", "math.factorial", "f"]),
        arguments=st.dictionaries(st.sampled_from(["city", "n", "x_1"]), fuzz_values, max_size=3),
    ),
    min_size=1,
    max_size=3,
)


@pytest.mark.parametrize("fmt", list(PARSERS))
@FUZZ
@given(data=st.data())
def test_fuzz_mutated_calls(fmt, data):
    calls = data.draw(fuzz_calls)
    content = data.draw(st.sampled_from(["", "Sure.", "Let me check:\n"]))
    text = data.draw(mutated(FORMATTERS[fmt](calls, content)))
    assert_well_formed(PARSERS[fmt](text))


# ---- pathological input --------------------------------------------------------------------

MB = 1_000_000
PATHOLOGICAL = {
    "deep brackets": "[" * 100_000,
    "deep braces": "{" * 100_000,
    "deep objects": '{"a":' * 100_000,
    "deep call-shaped": '{"name": "f", "arguments": ' * 50_000,
    "deep list of calls": "[" * 1000 + "f(x=1)" + "]" * 1000,
    "deep argument": "f(x=" + "[" * 100_000 + "]" * 100_000 + ")",
    "deep unary": "f(x=" + "-" * 100_000 + "1)",
    "huge int": "f(x=" + "9" * 100_000 + ")",
    "many open tags": "<tool_call>" * 80_000,
    "many open tags with braces": "<tool_call>{" * 80_000,
    "many close tags": "</tool_call>" * 80_000,
    "tag around deep json": "<tool_call>" + "[" * 100_000 + "</tool_call>",
    "long string": '<tool_call>{"name": "f", "arguments": {"s": "' + "x" * (MB - 60) + '"}}</tool_call>',
    "many calls": format_hermes([ToolCall("f", {"i": i}) for i in range(10_000)]),
    "many json calls": format_json([ToolCall("f", {"i": i}) for i in range(10_000)]),
    "many python calls": format_pythonic([ToolCall("f", {"i": i}) for i in range(10_000)]),
    "many call starts": "f(\n" * 300_000,
    "fences": "```\n" * 200_000,
    "nul bytes": "\x00" * MB,
    "nul in call": "[f(x='\x00')]\x00<tool_call>\x00{\"name\": \"\x00\"}</tool_call>",
    "unicode": '𝒻(𝓍=1) <tool_call>{"name": "天気", "arguments": {"都市": "東京"}}</tool_call> \ud800' * 1000,
    "one megabyte of prose": ("The quick brown fox (jumps) over [the] {lazy} dog. " * 20_000)[:MB],
    "over the cap": "x" * (MAX_CHARS + 1),
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
@pytest.mark.parametrize("fmt", list(PARSERS))
def test_pathological_input_is_fast_and_safe(fmt, name):
    text = PATHOLOGICAL[name]
    start = time.perf_counter()
    result = PARSERS[fmt](text)
    elapsed = time.perf_counter() - start
    assert_well_formed(result)
    assert elapsed < 5.0, f"{fmt} took {elapsed:.1f}s on {name!r}"


def test_over_the_cap_is_refused():
    for parse in PARSERS.values():
        result = parse("x" * (MAX_CHARS + 1))
        assert result.calls == [] and "too long" in result.error


@pytest.mark.parametrize(
    ("fmt", "name"), [("hermes", "many calls"), ("json", "many json calls"), ("pythonic", "many python calls")]
)
def test_many_calls_all_parse(fmt, name):
    expected = [ToolCall("f", {"i": i}) for i in range(10_000)]
    assert PARSERS[fmt](PATHOLOGICAL[name]) == ParseResult(expected, "", None)
