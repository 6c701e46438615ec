"""Exported data as other tools read it: `datasets.load_dataset(folder)` returns every split as itself,
arguments render once-encoded through SmolLM2's tokenizer, `tools` is valid JSON Schema, and the
trainer's token ids for our own traces are those of the older format (arguments and `tools` as JSON
strings, rendered with the spelling the model was shown)."""

import json

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from chord_env.chat import HERMES_TEMPLATE, ChatRenderer
from chord_env.data_import import import_rows
from chord_env.envs.data_build import build, fc_rows
from chord_env.tools.worlds import HELD_OUT
from chord_env.trainer.expert import load_expert


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    build(out, worlds=["bank", HELD_OUT[0]], n=4, math_n=2, fc_n=20)
    return out


def rows_of(path):
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def old_format(row):
    """The row as `chord-env data build` wrote it before: arguments and the shown tools as JSON strings."""
    messages = [{**m, "tool_calls": [{**c, "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False)}}
                                     for c in m["tool_calls"]]} for m in row["messages"]]
    old = {k: v for k, v in row.items() if k != "tools_shown"}
    return {**old, "messages": messages, "tools": json.dumps(row["tools_shown"])}


def test_load_dataset_returns_every_split_with_each_rows_objects(built, tmp_path):
    from datasets import load_dataset

    data = load_dataset(str(built), cache_dir=str(tmp_path / "cache"))
    splits = ("train", "validation", "held_out", "math_train", "math_validation", "fc_train", "fc_validation")
    assert set(data) == set(splits)
    for split in splits:
        written = rows_of(built / f"{split}.jsonl")
        assert data[split].num_rows == len(written) > 0
        for loaded, row in zip(data[split], written):
            assert loaded["split"] == split and loaded["tools"] == row["tools"] and loaded["tools_shown"] == row["tools_shown"]
            calls = [c["function"]["arguments"] for m in loaded["messages"] for c in m["tool_calls"]]
            assert calls == [c["function"]["arguments"] for m in row["messages"] for c in m["tool_calls"]]  # no keys of other rows
    assert {r["pattern"] for r in data["train"]} != {"math"} and all(r["pattern"] == "math" for r in data["math_train"])


def test_tools_are_json_schema_and_tools_shown_keeps_the_benchmark_spelling(built):
    rows = [r for s in ("train", "held_out", "fc_train") for r in rows_of(built / f"{s}.jsonl")]
    for row in rows:
        for spec in row["tools"]:
            Draft202012Validator.check_schema(spec["function"]["parameters"])
    shown_invalid = 0
    for row in rows:
        for spec in row["tools_shown"]:
            try:
                Draft202012Validator.check_schema(spec["function"]["parameters"])
            except SchemaError:
                shown_invalid += 1
    assert shown_invalid > 0  # the build shows some tasks' schemas as "dict"/"float"/"tuple"


def test_a_loaded_row_renders_arguments_once_encoded(built, tmp_path, smollm2_tokenizer):
    """SmolLM2's own template has no tool support; ChatRenderer renders SmolLM2 with `HERMES_TEMPLATE`,
    which follows the transformers convention (arguments as objects) as Qwen's template does."""
    from datasets import load_dataset

    row = next(r for r in load_dataset(str(built), split="fc_train", cache_dir=str(tmp_path / "cache"))
               if any(m["tool_calls"] and m["tool_calls"][0]["function"]["arguments"] for m in r["messages"]))
    call = next(c["function"] for m in row["messages"] for c in m["tool_calls"])
    text = smollm2_tokenizer.apply_chat_template(row["messages"], tools=row["tools"], chat_template=HERMES_TEMPLATE, tokenize=False)
    assert json.dumps({"name": call["name"], "arguments": call["arguments"]}, ensure_ascii=False) in text
    assert '"arguments": "' not in text and '\\"' not in text
    old = old_format(rows_of(built / "fc_train.jsonl")[0])
    old_text = smollm2_tokenizer.apply_chat_template(old["messages"], tools=json.loads(old["tools"]), chat_template=HERMES_TEMPLATE, tokenize=False)
    assert '"arguments": "{' in old_text  # what the older format gave other tools: arguments double-encoded


def test_trainer_token_ids_are_those_of_the_older_format(built, tmp_path, smollm2_tokenizer):
    rows = rows_of(built / "train.jsonl")[:3] + rows_of(built / "held_out.jsonl")[:2] + fc_rows(8, "train") + fc_rows(3, "validation")
    assert any(r["tools"] != r["tools_shown"] for r in rows) and any(r["tools"] == r["tools_shown"] for r in rows)
    new, old = tmp_path / "new.jsonl", tmp_path / "old.jsonl"
    new.write_text("".join(json.dumps(r) + "\n" for r in rows))
    old.write_text("".join(json.dumps(old_format(r)) + "\n" for r in rows))
    renderer = ChatRenderer(smollm2_tokenizer)
    for a, b in zip(load_expert(new, renderer), load_expert(old, renderer), strict=True):
        assert (a.token_ids, a.loss_mask) == (b.token_ids, b.loss_mask)


def test_imported_rows_are_written_in_the_export_format():
    row = {"messages": [{"role": "user", "content": "Time in Oslo?"},
                        {"role": "assistant", "content": None, "tool_calls": [
                            {"id": "c0", "type": "function", "function": {"name": "get_time", "arguments": '{"city": "Oslo"}'}}]}],
           "tools": json.dumps([{"type": "function", "function": {"name": "get_time", "description": "Time.",
                                                                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]),
           "tools_shown": [{"name": "get_time", "description": "Time.", "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}}}]}
    kept = import_rows([row]).rows[0]
    assert kept.training_tools[0].parameters["type"] == "dict"
    written = kept.to_openai()
    assert written["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert isinstance(written["tools"], list) and written["tools_shown"][0]["function"]["parameters"]["type"] == "dict"
    again = import_rows([written]).rows[0]
    assert (again.messages, again.tools, again.tools_shown) == (kept.messages, kept.tools, kept.tools_shown)
    mismatched = {**row, "tools_shown": [{"name": "other", "parameters": {"type": "object"}}]}
    assert "tools_shown must name the same tools" in import_rows([mismatched]).errors[0][1]
