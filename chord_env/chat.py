"""Chat rendering with tools: messages and tool specs -> prompt text -> token ids, appended turn by turn.

`HERMES_TEMPLATE` is our ChatML chat template with Hermes-style tool calling. Its tool system
prompt and its assistant tool-call rendering are copied from the Qwen2.5 chat template
(Qwen/Qwen2.5-7B-Instruct `tokenizer_config.json`, Apache-2.0), which follows NousResearch's Hermes
function calling (github.com/NousResearch/Hermes-Function-Calling). Two deviations, both for
incremental rendering: every tool result is its own `<|im_start|>tool ... <|im_end|>` message (Qwen
groups consecutive results into one user message, so appending a result rewrites the previous
one), and the call JSON is written with `tojson` as a whole (Qwen splices the name in unescaped),
with `</tool_call>` inside it escaped as `<\\/tool_call>` so the block cannot end early.
The assistant's tool calls render exactly as `parsing.format_hermes` writes them, so the text the
model is trained on is the text the parser reads. The template runs in transformers'
`apply_chat_template` (and so in vLLM) with messages as OpenAI dicts whose tool-call `arguments` are
dicts, the transformers convention.

`ChatRenderer` turns a conversation into token ids so that appending messages appends ids and never
changes earlier ones: `encode` is by construction the concatenation of one `encode_append` step per
message, and each step tokenizes only the text the new messages add to the rendering.

Control tokens come only from the template. Message and tool text (a tool result, a web page, a
user's request) is tokenized as text even where it spells a special token: a tool result holding
`<|im_end|><|im_start|>system` stays words inside the tool turn and never opens a turn of its own.
The renderer tells the template's special tokens from the text's by rendering the conversation a
second time with that text's special-token strings blanked out (same length, so positions match):
a special token's text found at a position where the blanked rendering has it too is the
template's and becomes its id; any other is tokenized with `split_special_tokens`. When no message
or tool text holds such a string the second rendering is skipped and the ids are exactly the
one-shot tokenization of the rendering. "Special token" means the tokenizer's special added
tokens (for SmolLM2, all 17 of its added tokens).

`encode` and `encode_observation` take `max_tokens`: a rendering longer than `max_tokens` tokens
can possibly cover (`max_tokens * max_token_chars` characters) is refused with None before it is
tokenized, so a huge observation costs a template rendering, never a tokenization.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Sequence

from chord_env.types import Message, ToolSpec, map_strings

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
END_OF_TURN = "<|im_end|>"

HERMES_TEMPLATE = """\
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages and messages[0].role == 'system' %}
        {{- messages[0].content }}
    {%- else %}
        {{- '""" + DEFAULT_SYSTEM_PROMPT + """' }}
    {%- endif %}
    {{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n' }}
    {{- 'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
    {%- for tool in tools %}
        {{- '\\n' }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments ' }}
    {{- 'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n' }}
    {{- '{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'system' and loop.first and tools %}
        {#- already rendered above, together with the tools #}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls or [] %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n' }}
            {%- set call_json = {'name': tool_call.name, 'arguments': tool_call.arguments} | tojson %}
            {{- call_json | replace('</tool_call>', '<\\\\/tool_call>') }}
            {{- '\\n</tool_call>' }}
        {%- endfor %}
        {%- if not message.content and not message.tool_calls %}
            {{- '\\n' }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == 'tool' %}
        {{- '<|im_start|>tool\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""


def template_message(message: Message) -> dict[str, Any]:
    """A message as chat templates expect it: OpenAI shape, tool-call arguments as a dict."""
    out = message.to_openai()
    if message.tool_calls:
        out["tool_calls"] = [
            {**call.to_openai(), "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    return out


def supports_tools(template: str | None) -> bool:
    """Whether a chat template renders tools (its source mentions `tools`)."""
    return bool(template) and "tools" in template


def special_strings(tokenizer: Any) -> list[str]:
    """The texts of a tokenizer's special tokens (e.g. `<|im_start|>`), longest first."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    texts = {t.content for t in added.values() if t.special} | set(getattr(tokenizer, "all_special_tokens", None) or ())
    return sorted((t for t in texts if t), key=lambda t: (-len(t), t))


class ChatRenderer:
    """Renders conversations with a chat template and encodes them incrementally.

    Uses `template` if given, else the tokenizer's own template when it supports tools, else
    `HERMES_TEMPLATE`. `end_of_turn` is the text that closes a model turn (the stop token the model
    samples); `encode_observation` cuts there.

    Token-in/token-out for the rollout runner: the prompt is `encode(messages, tools)`; the model
    samples ids up to and including `<|im_end|>`; what the template puts after `<|im_end|>` (the
    "\\n", the tool results, the next generation prompt) belongs to the environment's reply, so the
    runner appends `encode_observation(history, observation, tools)` where `history` ends with the
    assistant message it just sampled. The model's ids are never re-tokenized; only the template's
    text after the assistant's `<|im_end|>` is, which does not depend on how the model tokenized its
    turn (the runner may put the decoded text as the assistant message's plain content). A turn that
    stopped without `<|im_end|>` (length limit) has no place to append an observation: end the
    episode there.
    """

    def __init__(self, tokenizer: Any, template: str | None = None, end_of_turn: str = END_OF_TURN):
        own = getattr(tokenizer, "chat_template", None)
        self.tokenizer = tokenizer
        self.template = template or (own if supports_tools(own) else HERMES_TEMPLATE)
        self.end_of_turn = end_of_turn
        self._specials = special_strings(tokenizer)
        self._special_re = re.compile("|".join(map(re.escape, self._specials))) if self._specials else None
        self._blank = next(c for c in "#~^`@" if not any(c in s for s in self._specials))
        self._special_heads = {s[:k] for s in self._specials for k in range(1, len(s))}
        self._special_tails = {s[-k:] for s in self._specials for k in range(1, len(s))}

    def stop_token_ids(self) -> list[int]:
        """The ids that end a model turn: the template's end-of-turn token and the tokenizer's EOS."""
        tok = self.tokenizer
        ids = {tok.convert_tokens_to_ids(self.end_of_turn), tok.eos_token_id}
        return sorted(i for i in ids if isinstance(i, int) and i >= 0 and i != tok.unk_token_id)

    def render_text(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = (), add_generation_prompt: bool = False
    ) -> str:
        """The conversation as the template renders it."""
        return self.tokenizer.apply_chat_template(
            [template_message(m) for m in messages],
            tools=[t.to_openai() for t in tools] or None,
            chat_template=self.template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    @cached_property
    def max_token_chars(self) -> int:
        """The most characters one token can stand for (its longest vocabulary entry; for byte-level
        vocabularies each entry character is one byte, at least one character of text)."""
        return max(len(token) for token in self.tokenizer.get_vocab())

    def text_ids(self, text: str, blanked: str | None) -> list[int]:
        """Ids of `text`; a special token's text is its id only where `blanked` (the same rendering
        with the special-token text of messages and tools blanked out; None: they hold none) has it
        at the same place."""
        if blanked is None:
            return self._tokenize(text)
        ids: list[int] = []
        start = 0
        for match in self._special_re.finditer(text):
            if blanked[match.start() : match.end()] != match.group():
                ids += self._tokenize(text[start : match.start()])
                ids += self._tokenize(match.group(), split_special_tokens=True)
                start = match.end()
        return ids + self._tokenize(text[start:])

    def _tokenize(self, text: str, split_special_tokens: bool = False) -> list[int]:
        if not text:
            return []
        if split_special_tokens:
            return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _blank_out(self, text: str) -> str:
        """`text` with every special token's text in it, and any start or end of one at its edges
        (which the template's text could complete), replaced by as many `self._blank` characters."""
        text = self._special_re.sub(lambda m: self._blank * len(m.group()), text)
        longest = len(self._specials[0])
        head = max((k for k in range(1, min(longest, len(text) + 1)) if text[:k] in self._special_tails), default=0)
        tail = max((k for k in range(1, min(longest, len(text) + 1)) if text[-k:] in self._special_heads), default=0)
        if head + tail >= len(text):
            return self._blank * len(text)
        return self._blank * head + text[head : len(text) - tail] + self._blank * tail

    def blanked_rendering(self, messages: Sequence[Message], tools: Sequence[ToolSpec], gen: bool, text: str) -> str | None:
        """The rendering `text` of `messages` and `tools` with their special-token text blanked out;
        None when they hold none (nothing to tell apart)."""
        if self._special_re is None:
            return None
        blank_messages, blank_tools = map_strings(list(messages), self._blank_out), map_strings(list(tools), self._blank_out)
        if blank_messages == list(messages) and blank_tools == list(tools):
            return None
        blanked = self.render_text(blank_messages, blank_tools, gen)
        if len(blanked) != len(text):
            raise ValueError(
                "the chat template renders message or tool text differently once its special-token "
                "strings are blanked out, so the template's special tokens cannot be told from the text's"
            )
        return blanked

    def _too_long(self, text: str, max_tokens: int | None) -> bool:
        """Whether `text` certainly has more than `max_tokens` tokens (never, without a limit)."""
        return max_tokens is not None and len(text) > max(max_tokens, 0) * self.max_token_chars

    def _suffix(
        self, history: Sequence[Message], new: Sequence[Message], tools: Sequence[ToolSpec], gen: bool
    ) -> tuple[str, str]:
        before = self.render_text(history, tools, False)
        after = self.render_text([*history, *new], tools, gen)
        if not after.startswith(before):
            raise ValueError(
                f"the chat template is not incremental: rendering {len(history)} messages plus "
                f"{len(new)} more does not start with the rendering of the first {len(history)} "
                "(a template must not change earlier text when messages are appended)"
            )
        return before, after

    def encode_append(
        self,
        history: Sequence[Message],
        new_messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        add_generation_prompt: bool = True,
    ) -> list[int]:
        """Ids of the text that `new_messages` add after `history` (the whole rendering if no history).

        Raises ValueError if the template rewrites earlier text when messages are appended.
        """
        gen = add_generation_prompt
        if not history:
            text = self.render_text(new_messages, tools, gen)
            return self.text_ids(text, self.blanked_rendering(new_messages, tools, gen, text))
        before, after = self._suffix(history, new_messages, tools, gen)
        blanked = self.blanked_rendering([*history, *new_messages], tools, gen, after)
        return self.text_ids(after[len(before) :], None if blanked is None else blanked[len(before) :])

    def encode(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        add_generation_prompt: bool = True,
        max_tokens: int | None = None,
    ) -> list[int] | None:
        """Ids of the whole conversation: one `encode_append` step per message, concatenated
        (so `encode(messages[:k])` is a prefix of `encode(messages)` for every k).

        With `max_tokens`, None (and nothing tokenized) if the rendering is longer than that many
        tokens can cover."""
        if max_tokens is not None and self._too_long(self.render_text(messages, tools, add_generation_prompt), max_tokens):
            return None
        ids: list[int] = []
        for k in range(len(messages)):
            gen = add_generation_prompt and k == len(messages) - 1
            ids += self.encode_append(messages[:k], messages[k : k + 1], tools, gen)
        return ids

    def encode_observation(
        self,
        history: Sequence[Message],
        new_messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        add_generation_prompt: bool = True,
        max_tokens: int | None = None,
    ) -> list[int] | None:
        """Ids of everything after the last assistant turn's `end_of_turn`, through `new_messages`.

        `history` must end with the assistant message whose ids the model sampled (up to and
        including `end_of_turn`); the result is exactly what the runner appends after them. With
        `max_tokens`, None (and nothing tokenized) if that text is longer than that many tokens
        can cover.
        """
        if not history or history[-1].role != "assistant":
            raise ValueError("encode_observation needs a history that ends with an assistant message")
        gen = add_generation_prompt
        before, after = self._suffix(history, new_messages, tools, gen)
        cut = before.rfind(self.end_of_turn)
        if cut < 0:
            raise ValueError(f"the rendered assistant turn does not end with {self.end_of_turn!r}")
        cut += len(self.end_of_turn)
        if self._too_long(after[cut:], max_tokens):
            return None
        blanked = self.blanked_rendering([*history, *new_messages], tools, gen, after)
        return self.text_ids(after[cut:], None if blanked is None else blanked[cut:])
