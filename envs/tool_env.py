"""ToolEnv: a multi-turn Gymnasium environment in which an LLM agent solves a task by calling tools.

Contract (Gymnasium's, exactly):
- `reset(seed=None, options=None) -> (observation, info)`: picks a task (`options["task"]`, or
  `options["task_index"]`, or one drawn with the env's seeded generator), builds fresh tools for it,
  and returns the opening messages (system prompt if any, then the user's request). `info["tools"]`
  holds the `ToolSpec`s the agent may call, `info["task_id"]` the task's id.
- `step(action) -> (observation, reward, terminated, truncated, info)`: `action` is the assistant's
  text for one turn. It is parsed for tool calls in the env's format (`hermes`, `json` or
  `pythonic`). Calls are validated and executed in order; the observation is one `tool` message per
  call (a result or an error addressed to the agent, with the call's id). A turn with a malformed
  call (`ParseResult.error`) still runs the calls that were well formed, each answered by its own
  `tool` message, and then gets one more `tool` message (without an id: the malformed call has
  none) with the parse error; the turn counts as a parse error for `format_ok` and the episode goes
  on, so the agent can repair its call. The history (`messages`), `info["tool_calls"]`, the tool
  results and the rewards thus all hold exactly the calls that ran. A turn without a malformed call
  and with no calls is the final answer: the episode terminates, unless the env has a `user` (a
  user simulator) that replies: then its message is the observation and the episode goes on (the
  agent asked for a missing detail, or the user adds a request). Reaching `max_turns` turns, or
  `max_tokens` tokens of conversation (when a `count_tokens` function is given), truncates it.
- Budgets per turn: at most `max_calls_per_turn` calls run, within `max_tool_seconds_per_turn`
  seconds of tool time in all. A tool with a timeout gets at most what is left of the turn's time;
  a tool without one (`timeout=None`, inline: world tools, the sandboxed `python`, which bounds
  itself) is started only while time is left. The calls that do not run are treated like a
  malformed call: left out of the history and of `info["tool_calls"]`, and answered by one `tool`
  message (without an id) saying how many did not run and why; `info["skipped_calls"]` counts them.
- Rewards are sparse: 0 until the episode ends, then the rubric's weighted total, with the
  per-term breakdown in `info["reward_breakdown"]`, any failing term in `info["reward_errors"]` and
  `info["success"]`: the episode terminated (was not truncated), no term failed, and the rubric
  calls it solved (`Rubric.succeeded`; with the default rubric, the answer term is full).

Nothing the agent writes can crash a step: malformed calls, unknown tools, invalid arguments, tool
exceptions, timeouts and huge outputs become error messages (see `chord_env.tools.execute`).
Programming mistakes (an action that is not a `str`, stepping a finished episode) raise at once.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

from chord_env.envs.base import ChatEnv
from chord_env.envs.rewards import Episode, Rubric, default_rubric
from chord_env.envs.task import Task, TaskSource
from chord_env.parsing import PARSERS
from chord_env.tools import Tool, ToolResult, execute
from chord_env.types import Message, ToolCall

ToolSource = Sequence[Tool] | Callable[[Task], Sequence[Tool]]


class ToolEnv(ChatEnv):
    """Multi-turn tool use: the agent calls tools until it gives a final answer.

    Args:
        tools: the tools, or a function building fresh (stateful) tools for each task.
        tasks: a list of tasks, or a function drawing one from a numpy generator (procedural tasks).
        rubric: reward terms; defaults to answer match plus a small format bonus.
        parser: the tool-call format the agent writes: "hermes", "json" or "pythonic".
        system_prompt: an optional system message opening every episode.
        max_turns: agent turns before the episode is truncated.
        max_tokens: conversation tokens before the episode is truncated (needs `count_tokens`).
        count_tokens: counts the tokens of a text, e.g. `lambda s: len(tokenizer.encode(s))`.
        user: a user simulator, called after each final message with the task and the conversation;
            it returns the user's reply (the episode goes on) or None (the episode ends).
        max_calls_per_turn: tool calls run per turn; those beyond are answered with an error.
        max_tool_seconds_per_turn: seconds of tool time per turn, all calls together.
    """

    def __init__(
        self,
        tools: ToolSource,
        tasks: TaskSource,
        rubric: Rubric | None = None,
        parser: str = "hermes",
        system_prompt: str | None = None,
        max_turns: int = 8,
        max_tokens: int | None = None,
        count_tokens: Callable[[str], int] | None = None,
        user: Callable[[Task, list[Message]], str | None] | None = None,
        max_calls_per_turn: int = 16,
        max_tool_seconds_per_turn: float = 60.0,
    ):
        if parser not in PARSERS:
            raise ValueError(f"unknown parser {parser!r}; choose one of {sorted(PARSERS)}")
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        if max_calls_per_turn < 1:
            raise ValueError(f"max_calls_per_turn must be >= 1, got {max_calls_per_turn}")
        if not max_tool_seconds_per_turn > 0:
            raise ValueError(f"max_tool_seconds_per_turn must be > 0, got {max_tool_seconds_per_turn}")
        if max_tokens is not None and count_tokens is None:
            raise ValueError("max_tokens needs count_tokens (e.g. lambda s: len(tokenizer.encode(s)))")
        super().__init__(tasks, system_prompt)
        self._tools_for = tools if callable(tools) else (lambda task, fixed=tuple(tools): fixed)
        self.rubric = rubric or default_rubric()
        self.parser = parser
        self._parse = PARSERS[parser]
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.count_tokens = count_tokens
        self.user = user
        self.max_calls_per_turn = max_calls_per_turn
        self.max_tool_seconds_per_turn = max_tool_seconds_per_turn

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list, dict]:
        opening, info = super().reset(seed=seed, options=options)
        self.tools = {t.name: t for t in self._tools_for(self.task)}
        self.messages = list(opening)
        self.tool_results: list[ToolResult] = []
        self.actions: list[str] = []
        self.parse_errors = 0
        self.turns = 0
        self.tokens = sum(self.count_tokens(m.content) for m in opening) if self.count_tokens else 0
        return opening, {**info, "tools": [t.spec for t in self.tools.values()]}

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        self._begin_step(action)
        self.turns += 1
        self.actions.append(action)
        parsed = self._parse(action)
        asked = [ToolCall(c.name, c.arguments, c.id or f"call_{self.turns}_{i}") for i, c in enumerate(parsed.calls)]
        calls, results, over_budget = self._run(asked)
        self.messages.append(Message("assistant", parsed.content, tool_calls=calls))
        observation = self._respond(parsed.error, calls, results, over_budget)
        self.messages.extend(observation)
        self.tool_results.extend(results)

        terminated = parsed.error is None and not asked
        if terminated and self.user is not None and (reply := self.user(self.task, self.messages)) is not None:
            terminated = False
            observation = [Message("user", reply)]
            self.messages.extend(observation)
        truncation = None
        if self.count_tokens:
            self.tokens += self.count_tokens(action) + sum(self.count_tokens(m.content) for m in observation)
        if not terminated and self.turns >= self.max_turns:
            truncation = "max_turns"
        elif not terminated and self.max_tokens is not None and self.tokens >= self.max_tokens:
            truncation = "max_tokens"

        info: dict[str, Any] = {
            "turn": self.turns,
            "tool_calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in calls],
            "tool_errors": [r.error for r in results if r.error],
            "parse_error": parsed.error,
            "skipped_calls": len(asked) - len(calls),
            "truncation": truncation,
        }
        reward = 0.0
        if terminated or truncation:
            self._done = True
            final = parsed.content if terminated else None
            reward, outcome = self.rubric.score(self._episode(final, truncation), finished=terminated)
            info.update(outcome)
        return observation, reward, terminated, truncation is not None, info

    def _run(self, calls: list[ToolCall]) -> tuple[list[ToolCall], list[ToolResult], str | None]:
        """Run `calls` in order within the turn's budgets: the calls that ran, their results, and
        the error message for the calls that did not run (None if all ran)."""
        ran: list[ToolCall] = []
        results: list[ToolResult] = []
        began = time.monotonic()
        for call in calls:
            left = self.max_tool_seconds_per_turn - (time.monotonic() - began)
            why = None
            if len(ran) == self.max_calls_per_turn:
                why = f"at most {self.max_calls_per_turn} tool calls run per turn"
            elif left <= 0:
                why = f"this turn's {self.max_tool_seconds_per_turn:g} s of tool time were used up"
            if why is not None:
                return ran, results, f"Error: {len(calls) - len(ran)} of your tool calls did not run: {why}."
            tool = self.tools.get(call.name) if isinstance(call.name, str) else None
            tools = self.tools
            if tool is not None and tool.timeout is not None and tool.timeout > left:
                tools = {**self.tools, call.name: dataclasses.replace(tool, timeout=left)}
            ran.append(call)
            results.append(execute(call, tools))
        return ran, results, None

    def _respond(
        self, parse_error: str | None, calls: list[ToolCall], results: list[ToolResult], over_budget: str | None
    ) -> list[Message]:
        """One message per call that ran (with its id), then the over-budget error, then the parse error."""
        messages = [Message("tool", r.content, tool_call_id=c.id, name=c.name) for c, r in zip(calls, results)]
        if over_budget is not None:
            messages.append(Message("tool", over_budget))
        if parse_error is not None:
            self.parse_errors += 1
            ran = f" (your {len(calls)} well-formed call{'s' if len(calls) > 1 else ''} ran)" if calls else ""
            messages.append(Message("tool", f"Error: could not parse your tool call{ran}: {parse_error}"))
        return messages

    def _episode(self, final_answer: str | None, truncation: str | None) -> Episode:
        return Episode(
            task=self.task,
            messages=list(self.messages),
            final_answer=final_answer,
            tool_results=list(self.tool_results),
            parse_errors=self.parse_errors,
            turns=self.turns,
            tools=self.tools,
            truncation=truncation,
            actions=list(self.actions),
        )
