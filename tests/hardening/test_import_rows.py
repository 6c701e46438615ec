"""Imported data is checked row by row (issue 11, item 8): the importer survives deep nesting, wrong
container types, binary and Latin-1 files; it neither coerces nor drops anything silently; the expert
loader names every bad row by line and does not merge dict keys across rows (as Arrow did); `chord-env
data import` exposes the importer. Hypothesis fuzzes the importer with arbitrary values and bytes."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chord_env import cli
from chord_env.data_import import import_file, import_rows
from chord_env.trainer import expert as expert_module
from chord_env.trainer.batching import Sequence

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOOLS = [{"type": "function", "function": {"name": "get_time", "description": "Time in a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def row(arguments='{"city": "Oslo"}', name="get_time", content="It is 14:05.", **message_fields):
    return {"tools": TOOLS, "messages": [
        {"role": "user", "content": "Time in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "a", "content": "14:05"},
        {"role": "assistant", "content": content, **message_fields}]}


def nested(depth: int):
    value = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def only_error(report) -> str:
    assert report.rows == [] and len(report.errors) == 1, report.errors
    return report.errors[0][1]


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deep_nesting_is_a_bad_row_not_a_crash(tmp_path, depth):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"messages": ' + "[" * depth + "]" * depth + "}\n" + json.dumps(row()) + "\n")
    report = import_file(path)
    assert len(report.rows) == 1 and report.errors[0][0] == 1 and "nested" in report.errors[0][1]
    assert "nested" in only_error(import_rows([row(arguments=nested(depth // 10 + 70))]))
    assert "nested" in only_error(import_rows([row(arguments=json.dumps(nested(80)))]))


@pytest.mark.parametrize("bad, reason", [
    ({"messages": {"0": {"role": "user"}}}, "missing field 'messages'"),
    ({"messages": [["user", "hi"]]}, "message 0: missing field 'role'"),
    (row() | {"tools": {"get_time": TOOLS[0]}}, "tools must be a list"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": {"id": "a"}}]}, "tool_calls must be a list"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": {}}]}, "tool_calls must be a list"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": ["get_time"]}]}]}, "function must be an object"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": ["get_time"]}]}, "tool call 0 must be an object"),
    (row(arguments="[1, 2]"), "arguments must be a JSON object"),
    (row() | {"tools": [["get_time"]]}, "tool 0 must be an object"),
    (row() | {"tools": [{"type": "function", "function": {"name": "get_time", "parameters": []}}]}, "parameters must be a JSON Schema object"),
    ({"conversations": {"from": "human"}}, "missing field 'conversations'"),
])
def test_wrong_container_types_are_reported(bad, reason):
    fmt = "sharegpt" if "conversations" in bad else "openai"
    assert reason in only_error(import_rows([bad], fmt))


@pytest.mark.parametrize("bad, reason", [
    (row(content=42), "content must be a string"),
    (row(content=["It is", "14:05"]), "content must be a string"),
    (row(name=" get_time"), "surrounding whitespace"),
    (row(name=7), "name must be a non-empty string"),
    (row(arguments=""), "arguments is an empty string"),
    (row(arguments='{"city": "Oslo", "city": "Bergen"}'), "duplicate key 'city'"),
    (row(arguments='{"hours": NaN}'), "NaN is not a JSON number"),
    (row(arguments={"hours": math.inf}), "not finite"),
    (row(arguments={1: "one"}), "not a string"),
    (row(arguments={"when": {1, 2}}), "set, not JSON"),
    (row(content="\ud800"), "lone surrogate"),
    (row(weight=0), "unknown field 'weight'"),
    (row(function_call={"name": "get_time"}), "unknown field 'function_call'"),
    (row() | {"tools": TOOLS + TOOLS}, "duplicate names"),
    (row() | {"tools": [{"type": "function", "function": {**TOOLS[0]["function"], "strict": True}}]}, "unknown field 'strict'"),
])
def test_nothing_is_coerced_or_dropped_silently(bad, reason):
    assert reason in only_error(import_rows([bad]))


@pytest.mark.parametrize("bad, reason", [
    ({"conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": "hi"}]}, "value must be a string"),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hi", "weight": 0}]}, "unknown field 'weight'"),
    ({"conversations": [{"from": "gpt", "value": '<tool_call>{"name": "f", "arguments": {}}</tool_call> and more'}]}, "text after the tool calls"),
    ({"conversations": [{"from": "gpt", "value": '<tool_call>{"name": "f", "parameters": {}}</tool_call>'}]}, "unknown field 'parameters'"),
    ({"system": 3, "conversations": [{"from": "gpt", "value": "hi"}]}, "system must be a string"),
])
def test_sharegpt_rows_are_checked_as_strictly(bad, reason):
    assert reason in only_error(import_rows([bad], "sharegpt"))


def test_sharegpt_keeps_the_top_level_system_prompt_and_text_exactly():
    report = import_rows([{"system": "Be brief.", "conversations": [{"from": "human", "value": "  hi  "}, {"from": "gpt", "value": " hello \n"}]}], "sharegpt")
    assert [(m.role, m.content) for m in report.rows[0].messages] == [("system", "Be brief."), ("user", "  hi  "), ("assistant", " hello \n")]


@pytest.mark.parametrize("data", [
    "caf\xe9 au lait".encode("latin-1") + b"\n",
    bytes(range(256)) * 4,
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
])
def test_binary_and_latin1_files_are_bad_rows_not_crashes(tmp_path, data):
    path = tmp_path / "data.jsonl"
    path.write_bytes(data + b"\n" + json.dumps(row()).encode() + b"\n")
    report = import_file(path)
    assert len(report.rows) == 1 and report.read == report.skipped + 1
    assert all(isinstance(n, int) and n >= 1 for n, _ in report.errors)
    assert any("not UTF-8" in e or "invalid JSON" in e for _, e in report.errors)


def test_file_rows_are_numbered_by_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(row()).encode() + b"\n\n\n" + json.dumps(row(content=1)).encode() + b"\n")
    report = import_file(path)
    assert [r.number for r in report.rows] == [1] and [n for n, _ in report.errors] == [4]


def capture_rendered(monkeypatch):
    rendered = []

    def fake_render(renderer, messages, tools):
        rendered.append((messages, tools))
        return Sequence(token_ids=[1, 2], loss_mask=[0, 1], logprobs=[0.0, 0.0])

    monkeypatch.setattr(expert_module, "render_expert", fake_render)
    return rendered


def test_the_expert_loader_keeps_each_rows_own_keys(tmp_path, monkeypatch):
    rendered = capture_rendered(monkeypatch)
    path = tmp_path / "expert.jsonl"
    path.write_text(json.dumps(row(arguments={"city": "Oslo"})) + "\n" + json.dumps(row(arguments={"zone": "CET", "city": "Rome"})) + "\n")
    assert len(expert_module.load_expert(path, renderer=None)) == 2
    assert [m[1].tool_calls[0].arguments for m, _ in rendered] == [{"city": "Oslo"}, {"zone": "CET", "city": "Rome"}]
    assert [m[3].content for m, _ in rendered] == ["It is 14:05.", "It is 14:05."]


def test_the_expert_loader_names_every_bad_row_by_line(tmp_path, monkeypatch, caplog):
    capture_rendered(monkeypatch)
    path = tmp_path / "expert.jsonl"
    lines = [json.dumps(row()), json.dumps(row(arguments="[1]")), "", json.dumps(row(arguments={"a": 1})), json.dumps(row(content=5)), "{broken"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as raised:
        expert_module.load_expert(path, renderer=None)
    message = str(raised.value)
    assert str(path) in message and "3 of 5 rows are bad" in message
    assert "row 2: message 1: tool call 0: arguments must be a JSON object" in message and "row 5: message 3: content must be a string" in message
    assert "row 6: invalid JSON line" in message
    assert "row 2" in caplog.text and "row 5" in caplog.text and "row 6" in caplog.text


def test_data_import_command_writes_the_good_rows_and_lists_the_bad(tmp_path, capsys, monkeypatch):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(row(arguments={"city": "Oslo"})) + "\n{broken\n" + json.dumps(row(name="nope")) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli.main(["data", "import", str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kept 1, skipped 2" in printed and "row 2: invalid JSON line" in printed and "row 3: unknown tool 'nope'" in printed
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == 1 and written[0]["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert import_file(out).rows[0].messages == import_rows([row(arguments={"city": "Oslo"})]).rows[0].messages
    assert cli.main(["data", "import", str(source), "--out", str(out)]) == 1
    assert "exists; give --overwrite" in capsys.readouterr().err
    rejected = tmp_path / "rejected.jsonl"
    assert cli.main(["data", "import", str(source), "--out", str(rejected), "--on-error", "reject"]) == 1
    assert "2 of 3 rows are bad" in capsys.readouterr().err and not rejected.exists()
    share = tmp_path / "share.jsonl"
    share.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}) + "\n")
    assert cli.main(["data", "import", str(share), "--format", "sharegpt", "--out", str(tmp_path / "s.jsonl")]) == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=24,
)
python_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=4)
    | st.sets(st.integers(), max_size=2) | st.just(object()),
    lambda children: st.lists(children, max_size=4) | st.tuples(children)
    | st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), children, max_size=4),
    max_leaves=24,
)
paths_and_values = st.tuples(st.lists(st.integers(0, 6), max_size=6), python_values)


def mutate(value, path, new):
    """`value` with the element reached by following `path` (indices into keys or items) set to `new`."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return new
    if isinstance(value, dict):
        key = list(value)[path[0] % len(value)]
        return {**value, key: mutate(value[key], path[1:], new)}
    i = path[0] % len(value)
    return value[:i] + [mutate(value[i], path[1:], new)] + value[i + 1:]


def accounted(report, n):
    assert report.read == n == len(report.rows) + report.skipped
    assert sorted([r.number for r in report.rows] + [e[0] for e in report.errors]) == list(range(1, n + 1))
    assert all(isinstance(reason, str) and reason for _, reason in report.errors)


@FUZZ
@given(st.lists(python_values, max_size=5), st.sampled_from(["openai", "sharegpt"]))
def test_fuzz_any_values_are_kept_or_reported(rows, fmt):
    accounted(import_rows(rows, fmt), len(rows))


@FUZZ
@given(st.lists(paths_and_values, min_size=1, max_size=4), st.sampled_from(["openai", "sharegpt"]))
def test_fuzz_damaged_rows_are_reported_or_kept_exactly(damage, fmt):
    base = row() if fmt == "openai" else {"tools": TOOLS, "conversations": [
        {"from": "human", "value": "Time?"}, {"from": "gpt", "value": '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>'}]}
    rows = [mutate(base, path, new) for path, new in damage]
    report = import_rows(rows, fmt)
    accounted(report, len(rows))
    for kept in report.rows:
        source = rows[kept.number - 1]
        again = import_rows([kept.to_openai()]).rows[0]
        assert (again.messages, again.tools) == (kept.messages, kept.tools)
        if fmt == "openai":
            for message, original in zip(kept.messages, source["messages"]):
                assert message.content == (original.get("content") or "") and message.role == original["role"]
                for call, raw in zip(message.tool_calls, original.get("tool_calls") or []):
                    fn = raw.get("function", raw)
                    assert call.name == fn["name"]
                    assert call.arguments == (json.loads(fn["arguments"]) if isinstance(fn["arguments"], str) else fn["arguments"])


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=40), json_values.map(lambda v: json.dumps(v).encode()),
                          st.just(json.dumps(row()).encode())), max_size=6))
def test_fuzz_any_bytes_are_kept_or_reported(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "data.jsonl"
    path.write_bytes(b"\n".join(lines))
    report = import_file(path)
    numbers = [n for n, line in enumerate(path.read_bytes().split(b"\n"), 1) if line.strip(b" \t\r\n")]
    assert sorted([r.number for r in report.rows] + [e[0] for e in report.errors]) == numbers
