"""The importer: OpenAI and ShareGPT/Hermes rows, validated, with every bad row reported by number."""

import json

import pytest

from chord_env.data_import import RowError, import_file, import_rows

TOOLS = [{"type": "function", "function": {"name": "get_time", "description": "Time in a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def openai_row(name="get_time", arguments='{"city": "Oslo"}'):
    return {"tools": TOOLS, "messages": [
        {"role": "user", "content": "Time in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "a", "content": "14:05"},
        {"role": "assistant", "content": "It is 14:05 in Oslo."}]}


def sharegpt_row(value='<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>'):
    return {"tools": json.dumps(TOOLS), "conversations": [
        {"from": "human", "value": "Time in Oslo?"}, {"from": "gpt", "value": value},
        {"from": "observation", "value": "14:05"}, {"from": "gpt", "value": "It is 14:05."}]}


def test_good_rows_of_both_formats_import():
    report = import_rows([openai_row()], "openai")
    assert (report.read, len(report.rows), report.skipped) == (1, 1, 0)
    assert report.rows[0].messages[1].tool_calls[0].arguments == {"city": "Oslo"}
    shared = import_rows([sharegpt_row()], "sharegpt")
    assert shared.rows[0].messages[1].tool_calls[0].name == "get_time" and shared.rows[0].tools[0].name == "get_time"


def test_bad_rows_are_reported_by_row_and_skipped():
    rows = [openai_row(), {"tools": TOOLS}, openai_row(name="get_weather"), openai_row(arguments='{"city": '),
            {"messages": [{"content": "no role"}]}, openai_row()]
    report = import_rows(rows, "openai", on_error="skip")
    assert (report.read, len(report.rows), report.skipped) == (6, 2, 4)
    errors = dict(report.errors)
    assert "missing field 'messages'" in errors[2]
    assert "unknown tool 'get_weather'" in errors[3]
    assert "invalid JSON arguments" in errors[4]
    assert "missing field 'role'" in errors[5]
    assert "row 3" in report.summary() and "kept 2, skipped 4" in report.summary()


def test_sharegpt_bad_hermes_and_unknown_role_are_reported():
    rows = [sharegpt_row('<tool_call>{"name": "get_time", "arguments": {"city": }</tool_call>'),
            {"conversations": [{"from": "robot", "value": "hi"}]}, sharegpt_row()]
    report = import_rows(rows, "sharegpt")
    assert len(report.rows) == 1 and [n for n, _ in report.errors] == [1, 2]
    assert "invalid JSON" in report.errors[0][1] and "unknown role" in report.errors[1][1]


def test_reject_mode_stops_at_the_first_bad_row():
    with pytest.raises(RowError, match="row 2: unknown tool"):
        import_rows([openai_row(), openai_row(name="nope")], "openai", on_error="reject")


def test_a_file_with_a_broken_line_loses_nothing_silently(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(openai_row()) + "\n{not json\n" + json.dumps(openai_row()) + "\n")
    report = import_file(path)
    assert (report.read, len(report.rows)) == (3, 2) and report.errors[0][0] == 2 and "invalid JSON line" in report.errors[0][1]
