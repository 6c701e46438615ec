"""Import external expert tool-use data: OpenAI messages with `tool_calls`, or ShareGPT with Hermes tags.

Formats:
- `openai`: a row `{"messages": [...], "tools": [...]}`; assistant messages carry `tool_calls` with
  JSON-string (or object) arguments; `tools` are OpenAI tool specs (a list, or a JSON string of one).
- `sharegpt`: a row `{"conversations": [{"from": ..., "value": ...}], "tools": ...}` with roles
  `system`, `human`/`user`, `gpt`/`assistant`, `tool`/`observation`/`function_response`; assistant
  calls are `<tool_call>{"name", "arguments"}</tool_call>` blocks inside the `gpt` text.

Every row is checked: required fields present, roles known, arguments valid JSON objects, every
called tool named in the row's tool list (when the row has one), at least one assistant message.
`on_error="skip"` keeps the good rows and reports each bad one by row number; `"reject"` raises on
the first bad row. Nothing is dropped silently: `ImportReport` counts read, kept and skipped rows and
lists every error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from chord_env.parsing import parse_hermes
from chord_env.types import Message, ToolCall, ToolSpec

_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "tool": "tool", "observation": "tool", "function_response": "tool"}


class RowError(ValueError):
    """A bad row under `on_error="reject"`."""


@dataclass
class _BadLine:
    """A line of a JSON-lines file that is not JSON (reported like any bad row)."""

    message: str


@dataclass
class ImportedRow:
    """One imported conversation: its messages and the tools it offered."""

    messages: list[Message]
    tools: list[ToolSpec]


@dataclass
class ImportReport:
    """What an import did: every row is either kept or listed in `errors` as (row number, message)."""

    rows: list[ImportedRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    read: int = 0

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        lines = [f"read {self.read} rows: kept {len(self.rows)}, skipped {self.skipped}"]
        return "\n".join(lines + [f"  row {n}: {e}" for n, e in self.errors])


def _tools(row: dict[str, Any]) -> list[ToolSpec] | None:
    raw = row.get("tools")
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"tools is not valid JSON: {e.msg}") from None
    if not isinstance(raw, list):
        raise ValueError("tools must be a list of tool specs")
    try:
        return [ToolSpec.from_openai(t) for t in raw]
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"bad tool spec: missing {e}") from None


def _openai_messages(row: dict[str, Any]) -> list[Message]:
    if not isinstance(row.get("messages"), list):
        raise ValueError("missing field 'messages' (a list)")
    out = []
    for i, m in enumerate(row["messages"]):
        if not isinstance(m, dict) or "role" not in m:
            raise ValueError(f"message {i}: missing field 'role'")
        try:
            out.append(Message.from_openai(m))
        except json.JSONDecodeError as e:
            raise ValueError(f"message {i}: invalid JSON arguments: {e.msg}") from None
        except (KeyError, TypeError) as e:
            raise ValueError(f"message {i}: missing field {e} in a tool call") from None
        except ValueError as e:
            raise ValueError(f"message {i}: {e}") from None
    return out


def _sharegpt_messages(row: dict[str, Any]) -> list[Message]:
    if not isinstance(row.get("conversations"), list):
        raise ValueError("missing field 'conversations' (a list)")
    out = []
    for i, turn in enumerate(row["conversations"]):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise ValueError(f"turn {i}: missing field 'from' or 'value'")
        role = _SHAREGPT_ROLES.get(turn["from"])
        if role is None:
            raise ValueError(f"turn {i}: unknown role {turn['from']!r}")
        text = str(turn["value"])
        if role != "assistant":
            out.append(Message(role, text))
            continue
        parsed = parse_hermes(text)
        if parsed.error:
            raise ValueError(f"turn {i}: {parsed.error}")
        calls = [ToolCall(c.name, c.arguments, f"call_{i}_{k}") for k, c in enumerate(parsed.calls)]
        out.append(Message("assistant", parsed.content, tool_calls=calls))
    return out


def convert_row(row: Any, fmt: str) -> ImportedRow:
    """One row in `fmt` ("openai" or "sharegpt") -> ImportedRow; ValueError says what is wrong."""
    if isinstance(row, _BadLine):
        raise ValueError(row.message)
    if not isinstance(row, dict):
        raise ValueError(f"row is not an object but {type(row).__name__}")
    messages = _openai_messages(row) if fmt == "openai" else _sharegpt_messages(row)
    tools = _tools(row)
    if not any(m.role == "assistant" for m in messages):
        raise ValueError("no assistant message")
    if tools is not None:
        names = {t.name for t in tools}
        for m in messages:
            for c in m.tool_calls:
                if c.name not in names:
                    raise ValueError(f"unknown tool {c.name!r}: the row offers {sorted(names)}")
    return ImportedRow(messages, tools or [])


def import_rows(rows: Iterable[Any], fmt: str = "openai", on_error: str = "skip") -> ImportReport:
    """Convert and validate rows (numbered from 1); see the module docstring for `on_error`."""
    if fmt not in ("openai", "sharegpt"):
        raise ValueError(f"format must be 'openai' or 'sharegpt', got {fmt!r}")
    if on_error not in ("skip", "reject"):
        raise ValueError(f"on_error must be 'skip' or 'reject', got {on_error!r}")
    report = ImportReport()
    for number, row in enumerate(rows, 1):
        report.read += 1
        try:
            report.rows.append(convert_row(row, fmt))
        except ValueError as e:
            if on_error == "reject":
                raise RowError(f"row {number}: {e}") from None
            report.errors.append((number, str(e)))
    return report


def import_file(path: str | Path, fmt: str = "openai", on_error: str = "skip") -> ImportReport:
    """Import a JSON-lines file; a line that is not JSON is a bad row like any other."""

    def rows() -> Iterable[Any]:
        with Path(path).open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        yield _BadLine(f"invalid JSON line: {e.msg}")

    return import_rows(rows(), fmt, on_error)
