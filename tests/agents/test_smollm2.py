"""The real SmolLM2-135M-Instruct, converted from the bundled GGUF (bf16), answering a tool-call
prompt rendered by `ChatRenderer` through the vLLM engine. Slow: conversion ~20 s, engine ~30 s."""

from __future__ import annotations

import math

import pytest

from chord_env.agents.backend import SamplingParams
from chord_env.chat import ChatRenderer
from chord_env.types import Message, ToolSpec

WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.mark.slow
def test_smollm2_generates_after_a_tool_prompt(smollm2_model_dir):
    from transformers import AutoTokenizer

    from chord_env.agents.vllm_backend import VLLMBackend

    tokenizer = AutoTokenizer.from_pretrained(smollm2_model_dir)
    renderer = ChatRenderer(tokenizer)
    assert "<tool_call>" in renderer.template  # the saved template is ours, with tools
    prompt = renderer.encode([Message("user", "What is the weather in Paris?")], [WEATHER])
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    with VLLMBackend(smollm2_model_dir, max_model_len=1024, kv_cache_gib=0.5) as backend:
        (greedy,) = backend.generate([prompt], SamplingParams(temperature=0, max_tokens=32))[0]
        samples = backend.generate([prompt], SamplingParams(temperature=1.0, max_tokens=16, n=4))[0]
    assert greedy.token_ids and len(greedy.logprobs) == len(greedy.token_ids)
    assert all(math.isfinite(lp) and lp <= 0 for lp in greedy.logprobs)
    if greedy.finish_reason == "stop":
        assert greedy.token_ids[-1] == im_end
    assert tokenizer.decode(greedy.token_ids).strip()
    assert len(samples) == 4 and all(1 <= len(s.token_ids) <= 16 for s in samples)
