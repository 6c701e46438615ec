"""`ChatBackend`: an OpenAI-compatible chat-completions endpoint, messages in and text out, for evaluating
a model known only by its served name (a hosted API, or a server whose tokenizer we do not have).

Each conversation becomes one `POST {base_url}/chat/completions` request with the messages and tools
in the OpenAI format (`Message.to_openai`, `ToolSpec.to_openai`), `n`, `max_tokens`, `temperature`,
`top_p` and (when set) `seed` from `SamplingParams`; the server applies the model's own chat template
and end of turn. Each reply becomes the text the local backends would have produced for the same
turn, so the same checks score it: the message's `content`, followed by its structured `tool_calls`
written in the eval's tool-call format (`parsing.FORMATTERS`; a server that does not parse tool calls
leaves them in `content`, where the format's parser finds them as it would in a local model's text).
A call whose `arguments` are not a JSON object is written as a Hermes block around its raw arguments,
which no parser accepts, so the case fails with a parse error instead of losing the call.

Connection, retries, the total deadline per request and error reporting are `OpenAIClient`'s
(`openai_backend.py`). Any request that fails for good fails the whole call with a `BackendError`.

What it does not give: token ids or logprobs (so no training rollouts, and no `Backend` protocol), a
local prompt-length check (the server enforces its own context window), or multi-turn play.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Sequence

from chord_env.agents.backend import SamplingParams
from chord_env.agents.openai_backend import BackendError, OpenAIClient
from chord_env.parsing import FORMATTERS, HERMES_CLOSE, HERMES_OPEN
from chord_env.types import Message, ToolCall, ToolSpec


@dataclass
class ChatReply:
    """The `n` replies to one conversation as text, and the prompt's length as the server counted it
    (`usage.prompt_tokens`; 0 where it reports none)."""

    texts: list[str]
    prompt_tokens: int


def reply_text(message: Any, tool_format: str, url: str) -> str:
    """One chat reply (`choices[i].message`) as assistant text in `tool_format` (module docstring)."""
    if not isinstance(message, dict):
        raise BackendError(f"{url} returned a choice without a `message` object: {message!r:.200}")
    content = message.get("content") or ""
    calls = message.get("tool_calls") or []
    if not isinstance(content, str) or not isinstance(calls, list):
        raise BackendError(f"{url} returned a message whose content is not text or whose tool_calls are not a list")
    good: list[ToolCall] = []
    raw: list[str] = []
    for call in calls:
        try:
            good.append(ToolCall.from_openai(call))
        except (ValueError, TypeError, KeyError, AttributeError):
            function = call.get("function", {}) if isinstance(call, dict) else {}
            name = function.get("name") if isinstance(function, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            raw.append(f'{HERMES_OPEN}\n{{"name": {json.dumps(name)}, "arguments": {arguments}}}\n{HERMES_CLOSE}')
    text = FORMATTERS[tool_format](good, content) if good else content
    return "\n".join([text, *raw]) if raw else text


class ChatBackend(OpenAIClient):
    """Chat completions from the OpenAI-compatible server at `base_url` for the served `model`
    (`OpenAIClient` for the connection options)."""

    def _body(self, messages: Sequence[Message], tools: Sequence[ToolSpec], params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_openai() for m in messages],
            "n": params.n,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if tools:
            body["tools"] = [t.to_openai() for t in tools]
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def _parse(self, payload: Any, n: int, tool_format: str) -> ChatReply:
        url = self.base_url + "/chat/completions"
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or len(choices) != n or not all(isinstance(c, dict) for c in choices):
            raise BackendError(f"{url} returned no list of {n} choices: {payload!r:.200}")
        ordered = sorted(choices, key=lambda c: c.get("index") if isinstance(c.get("index"), int) else 0)
        usage = payload.get("usage")
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return ChatReply([reply_text(c.get("message"), tool_format, url) for c in ordered],
                         prompt_tokens if isinstance(prompt_tokens, int) else 0)

    async def _chat(self, conversations: Sequence[tuple[Sequence[Message], Sequence[ToolSpec]]],
                    params: SamplingParams, tool_format: str) -> list[ChatReply]:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> ChatReply:
            async with semaphore:
                payload = await self._request("POST", "/chat/completions", self._body(messages, tools, params))
            return self._parse(payload, params.n, tool_format)

        return await self._all([one(messages, tools) for messages, tools in conversations])

    def chat(self, conversations: Sequence[tuple[Sequence[Message], Sequence[ToolSpec]]], params: SamplingParams,
             tool_format: str = "hermes") -> list[ChatReply]:
        """`params.n` replies to each (messages, tools) conversation, in order: one request each, all in
        flight together (up to `concurrency`). Tool calls are written in `tool_format` ("hermes",
        "json", "pythonic"). Raises `BackendError` and returns nothing if any request fails."""
        if tool_format not in FORMATTERS:
            raise ValueError(f"unknown tool-call format {tool_format!r}; choose from {sorted(FORMATTERS)}")
        return self._run(self._chat(conversations, params, tool_format))
