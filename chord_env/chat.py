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
"""

from __future__ import annotations

from typing import Any, Sequence

from chord_env.types import Message, ToolSpec

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

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

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
        if not history:
            return self._ids(self.render_text(new_messages, tools, add_generation_prompt))
        before, after = self._suffix(history, new_messages, tools, add_generation_prompt)
        return self._ids(after[len(before) :])

    def encode(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = (), add_generation_prompt: bool = True
    ) -> list[int]:
        """Ids of the whole conversation: one `encode_append` step per message, concatenated
        (so `encode(messages[:k])` is a prefix of `encode(messages)` for every k)."""
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
    ) -> list[int]:
        """Ids of everything after the last assistant turn's `end_of_turn`, through `new_messages`.

        `history` must end with the assistant message whose ids the model sampled (up to and
        including `end_of_turn`); the result is exactly what the runner appends after them.
        """
        if not history or history[-1].role != "assistant":
            raise ValueError("encode_observation needs a history that ends with an assistant message")
        before, after = self._suffix(history, new_messages, tools, add_generation_prompt)
        cut = before.rfind(self.end_of_turn)
        if cut < 0:
            raise ValueError(f"the rendered assistant turn does not end with {self.end_of_turn!r}")
        return self._ids(after[cut + len(self.end_of_turn) :])
