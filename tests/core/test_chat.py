"""Chat rendering with tools and incremental encoding, with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chord_env.chat import DEFAULT_SYSTEM_PROMPT, HERMES_TEMPLATE, ChatRenderer
from chord_env.parsing import format_hermes, parse_hermes
from chord_env.types import Message, ToolCall, ToolSpec

WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TOOLS = [WEATHER]
CALL = ToolCall("get_weather", {"city": "Paris"}, id="call_0")
CONVERSATION = [
    Message("system", "Be brief."),
    Message("user", "Weather in Paris and Rome?"),
    Message("assistant", "Checking.", [CALL, ToolCall("get_weather", {"city": "Rome"}, id="call_1")]),
    Message("tool", '{"temp_c": 21}', tool_call_id="call_0", name="get_weather"),
    Message("tool", '{"temp_c": 25}', tool_call_id="call_1", name="get_weather"),
    Message("assistant", "", [ToolCall("get_weather", {"city": "Nice"}, id="call_2")]),
    Message("tool", "error: unknown city", tool_call_id="call_2"),
    Message("assistant", "Paris 21 C, Rome 25 C."),
    Message("user", "Thanks!"),
]

TOOLS_SYSTEM = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    + json.dumps(WEATHER.to_openai(), ensure_ascii=False)
    + "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)

MINIMAL_TOOLS_TEMPLATE = (
    "{% if tools %}TOOLS {{ tools | length }}\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def renderer(smollm2_tokenizer):
    return ChatRenderer(smollm2_tokenizer)


def test_smollm2_has_no_tool_template_so_ours_is_used(renderer):
    assert renderer.template == HERMES_TEMPLATE


def test_renders_tools_system_user_calls_and_results(renderer):
    text = renderer.render_text(CONVERSATION[:5], TOOLS, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief."
        + TOOLS_SYSTEM
        + "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n"
        "<|im_start|>assistant\nChecking.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>tool\n<tool_response>\n{"temp_c": 21}\n</tool_response><|im_end|>\n'
        '<|im_start|>tool\n<tool_response>\n{"temp_c": 25}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )


def test_default_system_prompt_only_with_tools(renderer):
    user = [Message("user", "hi")]
    assert renderer.render_text(user, TOOLS) == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}{TOOLS_SYSTEM}<|im_start|>user\nhi<|im_end|>\n"
    )
    assert renderer.render_text(user) == "<|im_start|>user\nhi<|im_end|>\n"
    assert renderer.render_text([Message("system", "S"), *user]) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    )


@pytest.mark.parametrize("content", ["", "Let me check."])
@pytest.mark.parametrize("n_calls", [0, 1, 2])
def test_assistant_turn_is_what_format_hermes_writes(renderer, content, n_calls):
    calls = [ToolCall("f", {"x": "a</tool_call>b", "n": i}) for i in range(n_calls)]
    text = renderer.render_text([Message("assistant", content, calls)])
    body = format_hermes(calls, content)
    assert text == f"<|im_start|>assistant\n{body}<|im_end|>\n"
    assert parse_hermes(body).calls == calls


def test_encode_is_one_shot_tokenization(renderer, smollm2_tokenizer):
    ids = renderer.encode(CONVERSATION, TOOLS)
    text = renderer.render_text(CONVERSATION, TOOLS, add_generation_prompt=True)
    assert ids == smollm2_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert smollm2_tokenizer.decode(ids) == text


def test_appending_never_changes_earlier_ids(renderer):
    full = renderer.encode(CONVERSATION, TOOLS, add_generation_prompt=False)
    for k in range(1, len(CONVERSATION) + 1):
        prefix = renderer.encode(CONVERSATION[:k], TOOLS, add_generation_prompt=False)
        assert full[: len(prefix)] == prefix
        step = renderer.encode_append(CONVERSATION[:k], CONVERSATION[k:], TOOLS, add_generation_prompt=False)
        assert prefix + step == full


def test_runner_flow_appends_observations_after_sampled_ids(renderer, smollm2_tokenizer):
    """Simulate a rollout: prompt, each sampled turn up to <|im_end|>, then the observation's ids."""
    im_end = smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")
    turns = [i for i, m in enumerate(CONVERSATION) if m.role == "assistant"]
    ids = renderer.encode(CONVERSATION[: turns[0]], TOOLS)
    for turn, next_turn in zip(turns, turns[1:] + [len(CONVERSATION)]):
        sampled = CONVERSATION[turn]
        text = format_hermes(sampled.tool_calls, sampled.content)
        ids += smollm2_tokenizer(text, add_special_tokens=False)["input_ids"] + [im_end]
        history, observation = CONVERSATION[: turn + 1], CONVERSATION[turn + 1 : next_turn]
        ids += renderer.encode_observation(history, observation, TOOLS)
        seen = CONVERSATION[:next_turn]
        assert smollm2_tokenizer.decode(ids) == renderer.render_text(seen, TOOLS, add_generation_prompt=True)
        assert ids == renderer.encode(seen, TOOLS)


def test_encode_observation_needs_an_assistant_turn(renderer):
    with pytest.raises(ValueError, match="ends with an assistant"):
        renderer.encode_observation(CONVERSATION[:2], CONVERSATION[2:3], TOOLS)


def test_template_argument_is_used(smollm2_tokenizer):
    renderer = ChatRenderer(smollm2_tokenizer, template=MINIMAL_TOOLS_TEMPLATE)
    assert renderer.render_text([Message("user", "hi")], TOOLS, add_generation_prompt=True) == (
        "TOOLS 1\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    prompt = renderer.tokenizer("<|im_start|>assistant\n")["input_ids"]
    assert renderer.encode([Message("user", "hi")], TOOLS)[-len(prompt) :] == prompt


def test_tokenizer_template_is_used_when_it_supports_tools():
    tool_capable = SimpleNamespace(chat_template=MINIMAL_TOOLS_TEMPLATE)
    assert ChatRenderer(tool_capable).template == MINIMAL_TOOLS_TEMPLATE
    assert ChatRenderer(SimpleNamespace(chat_template="{{ messages }}")).template == HERMES_TEMPLATE
    assert ChatRenderer(SimpleNamespace(chat_template=None)).template == HERMES_TEMPLATE


def test_non_incremental_template_is_refused(smollm2_tokenizer):
    counting = "{{ messages | length }}{% for m in messages %}{{ m.content }}{% endfor %}"
    renderer = ChatRenderer(smollm2_tokenizer, template=counting)
    with pytest.raises(ValueError, match="not incremental"):
        renderer.encode([Message("user", "a"), Message("user", "b")])


roles = st.sampled_from(["user", "assistant", "tool", "system"])
texts = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\r"), max_size=30)
calls = st.lists(
    st.builds(
        ToolCall,
        name=st.sampled_from(["get_weather", "f"]),
        arguments=st.dictionaries(st.text(max_size=5), texts, max_size=2),
    ),
    max_size=2,
)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages = []
    for _ in range(draw(st.integers(1, 6))):
        role = draw(roles)
        messages.append(Message(role, draw(texts), draw(calls) if role == "assistant" else []))
    return messages


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=conversations(), with_tools=st.booleans())
def test_incremental_encoding_property(renderer, smollm2_tokenizer, messages, with_tools):
    tools = TOOLS if with_tools else []
    full = renderer.encode(messages, tools)
    text = renderer.render_text(messages, tools, add_generation_prompt=True)
    assert full == smollm2_tokenizer(text, add_special_tokens=False)["input_ids"]
    for k in range(1, len(messages)):
        prefix = renderer.encode(messages[:k], tools, add_generation_prompt=False)
        assert full[: len(prefix)] == prefix
