"""Run one tool call the model asked for; whatever the model wrote, return a `ToolResult`, never raise.

Steps: look the tool up (unknown -> "unknown_tool", with the available names), validate the
arguments against its JSON Schema (missing, extra or wrong-typed -> "invalid_arguments", with
jsonschema's message), convert them (dicts -> dataclasses, values -> Enum members), run the call
within the tool's timeout ("timeout"), turn the result into text (a `str` as is, anything else as
JSON) and cap it at `max_output_chars`. An exception from the tool becomes "tool_exception" with
`ExcType: message` and no traceback. The content of an error result is addressed to the agent.

Timeouts. Tools run in-process, because stateful tools mutate Python objects the environment owns.
Each calling thread owns one persistent daemon worker thread; a call is handed to it through a
queue and the caller waits for the reply with a timeout. On timeout the worker is abandoned (told to
exit once its call returns) and the next call starts a fresh one. Tools with `timeout=None` run
inline on the caller's thread, with no limit.

What this does not do: Python cannot kill a thread. An abandoned call keeps running in the
background until it returns, using CPU and possibly mutating the tool's state after its episode
moved on; a call that never returns leaks one idle daemon thread (it does not block interpreter
exit). A tool stuck in C code that holds the GIL (a huge integer power, say) stalls the caller too,
so the timeout fires only when it lets go. Untrusted code belongs in a subprocess (see
`chord_env.tools.python_exec`), not in a thread. Inline tools are not protected by
this module's `BaseException` handling: `KeyboardInterrupt` and `SystemExit` still propagate.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from jsonschema.exceptions import best_match

from chord_env.tools.schema import Tool
from chord_env.types import ToolCall

_MAX_ERROR_CHARS = 300


@dataclass(slots=True)
class ToolResult:
    """The outcome of one call: `content` goes back to the agent; `error` is None on success or one
    of "unknown_tool", "invalid_arguments", "tool_exception", "timeout"; `truncated` says the output
    was cut at the tool's `max_output_chars`."""

    name: str
    content: str
    error: str | None = None
    truncated: bool = False


def execute(call: ToolCall, tools: Mapping[str, Tool]) -> ToolResult:
    """Validate and run `call` with the matching tool in `tools` (keyed by tool name)."""
    name = call.name
    tool = tools.get(name) if isinstance(name, str) else None
    if tool is None:
        available = ", ".join(tools) or "none"
        return ToolResult(str(name), f"Error: unknown tool {name!r}. Available tools: {available}.", "unknown_tool")
    arguments = call.arguments
    if not tool.validator.is_valid(arguments):
        error = best_match(tool.validator.iter_errors(arguments))
        where = f" (at {error.json_path})" if error.path else ""
        message = _clip(error.message) + where
        return ToolResult(name, f"Error: invalid arguments for {name}: {message}", "invalid_arguments")
    try:
        kwargs = tool.prepare(arguments)
    except Exception as e:
        return ToolResult(name, f"Error: invalid arguments for {name}: {_describe(e)}", "invalid_arguments")
    if tool.timeout is None:
        try:
            ok, text = True, _run(tool.fn, kwargs)
        except Exception as e:
            ok, text = False, _describe(e)
    else:
        reply = _worker().submit(tool.fn, kwargs, tool.timeout)
        if reply is None:
            return ToolResult(name, f"Error: {name} did not finish within {tool.timeout:g} s.", "timeout")
        ok, text = reply
    if not ok:
        return ToolResult(name, f"Error: {name} raised {text}", "tool_exception")
    if len(text) > tool.max_output_chars:
        cut = len(text) - tool.max_output_chars
        return ToolResult(name, f"{text[: tool.max_output_chars]}\n[... truncated {cut} characters]", None, True)
    return ToolResult(name, text)


def _run(fn: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    result = fn(**kwargs)
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)


def _describe(e: BaseException) -> str:
    return _clip(f"{type(e).__name__}: {e}")


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else f"{text[:_MAX_ERROR_CHARS]}..."


class _Worker:
    """One daemon thread running calls handed over through a queue; replies come back on another.

    A worker that timed out is abandoned: it gets a stop sentinel and exits when its call returns,
    and its late reply lands in its own reply queue, which nobody reads any more.
    """

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[tuple[Callable[..., Any], dict[str, Any]] | None] = queue.SimpleQueue()
        self.replies: queue.SimpleQueue[tuple[bool, str]] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="chord-tool-worker", daemon=True).start()

    def _loop(self) -> None:
        requests, replies = self.requests, self.replies
        while (job := requests.get()) is not None:
            try:
                replies.put((True, _run(*job)))
            except BaseException as e:  # the worker must survive SystemExit & co. raised by a tool
                replies.put((False, _describe(e)))

    def submit(self, fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float) -> tuple[bool, str] | None:
        """Run `fn(**kwargs)` on this worker; None if it did not finish in `timeout` seconds."""
        self.requests.put((fn, kwargs))
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            self.requests.put(None)
            _local.worker = None
            return None


_local = threading.local()


def _worker() -> _Worker:
    worker = getattr(_local, "worker", None)
    if worker is None:
        worker = _local.worker = _Worker()
    return worker
