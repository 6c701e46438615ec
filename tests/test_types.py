"""Core types: OpenAI-format conversion and the lossless JSON-lines round trip of trajectories."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chord_env.types import Message, ToolCall, ToolSpec, Trajectory, Turn, read_jsonl, write_jsonl

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
tool_calls = st.builds(ToolCall, name=st.text(min_size=1), arguments=st.dictionaries(st.text(max_size=8), json_values, max_size=3), id=st.none() | st.text())
messages = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=st.text(),
    tool_calls=st.lists(tool_calls, max_size=2),
    tool_call_id=st.none() | st.text(),
    name=st.none() | st.text(),
)


@st.composite
def trajectories(draw):
    n = draw(st.integers(0, 30))
    mask = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    return Trajectory(
        token_ids=draw(st.lists(st.integers(0, 50_000), min_size=n, max_size=n)),
        loss_mask=mask,
        logprobs=[draw(st.floats(max_value=0.0, allow_nan=False)) if m else 0.0 for m in mask],
        prompt_length=draw(st.integers(0, n)),
        reward=draw(st.floats(allow_nan=False, allow_infinity=False)),
        reward_breakdown=draw(st.dictionaries(st.text(max_size=6), st.floats(allow_nan=False), max_size=3)),
        turns=[Turn(start=0, end=n, reward=1.0, info={"calls": 2})],
        messages=draw(st.lists(messages, max_size=3)),
        task_id=draw(st.text(max_size=10)),
        truncation=draw(st.none() | st.sampled_from(["max_turns", "max_tokens", "context"])),
        info=draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3)),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(trajectories(), max_size=4))
def test_jsonl_round_trip_is_lossless(tmp_path_factory, trajs):
    path = tmp_path_factory.mktemp("traj") / "t.jsonl"
    assert write_jsonl(path, trajs) == len(trajs)
    assert list(read_jsonl(path)) == trajs


def test_round_trip_keeps_float_bits(tmp_path):
    lp = [-1e-300, -0.1 - 0.2, -math.pi, -5e-324]
    t = Trajectory(token_ids=[1, 2, 3, 4], loss_mask=[1] * 4, logprobs=lp, prompt_length=0)
    write_jsonl(tmp_path / "t.jsonl", [t])
    back = next(read_jsonl(tmp_path / "t.jsonl"))
    assert [x.hex() for x in back.logprobs] == [x.hex() for x in lp]


def test_trajectory_rejects_misaligned_arrays():
    with pytest.raises(ValueError, match="one entry per token"):
        Trajectory(token_ids=[1, 2], loss_mask=[1], logprobs=[0.0, 0.0], prompt_length=0)


def test_corrupt_line_is_reported_with_file_and_line(tmp_path):
    good = Trajectory(token_ids=[1], loss_mask=[0], logprobs=[0.0], prompt_length=1)
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [good])
    with path.open("a") as f:
        f.write('{"token_ids": [1, 2]}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl:2"):
        list(read_jsonl(path))


@given(messages)
def test_message_openai_round_trip(message):
    assert Message.from_openai(message.to_openai()) == message


def test_openai_tool_call_arguments_are_a_json_string():
    call = ToolCall("f", {"x": 1}, id="c1")
    wire = call.to_openai()
    assert wire == {"type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}, "id": "c1"}
    assert ToolCall.from_openai(wire) == call
    with pytest.raises(ValueError):
        ToolCall.from_openai({"function": {"name": "f", "arguments": "[1]"}})


def test_message_rejects_unknown_role():
    with pytest.raises(ValueError, match="role"):
        Message.from_openai({"role": "robot", "content": "hi"})


def test_tool_spec_openai_round_trip():
    spec = ToolSpec("f", "does f", {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    assert ToolSpec.from_openai(spec.to_openai()) == spec
