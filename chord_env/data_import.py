"""Import external expert tool-use data, checked row by row: OpenAI messages, or ShareGPT with Hermes tags.

Formats:
- `openai`: a row `{"messages": [...], "tools": [...]}`; each message has `role`, `content` (a string;
  null only on an assistant turn) and optionally `tool_calls`, `tool_call_id`, `name`; an assistant's
  `tool_calls` are `{"id", "type": "function", "function": {"name", "arguments"}}` (or the flat
  `{"id", "name", "arguments"}`) with arguments a JSON object or a JSON string of one; `tools` are
  OpenAI tool specs (a list, or a JSON string of one; absent: the row names no tool list), and
  `tools_shown` (optional, same form) the same tools as the model is to be shown them, when that
  spelling differs (`chord-env data build` writes both: `tools` in JSON Schema for other tools,
  `tools_shown` in the benchmark spellings its tasks show).
- `sharegpt`: a row `{"conversations": [{"from": ..., "value": ...}], "tools": ..., "system": ...}` with
  roles `system`, `human`/`user`, `gpt`/`assistant`, `tool`/`observation`/`function_response`;
  assistant calls are `<tool_call>{"name", "arguments"}</tool_call>` blocks after the turn's text; a
  top-level `system` string becomes the first message.

Every row is checked, and a row is either kept exactly or reported, never repaired: values are JSON
(string keys, finite numbers, valid Unicode without lone surrogates, at most `MAX_DEPTH` levels
deep); every field has its type (a number is not taken for a string, a name is not trimmed); a
message or call field the importer would not carry over is an error, not dropped (keys of the row
itself besides those above are metadata and ignored); JSON text is parsed strictly (no duplicate
keys, no NaN); tool names are unique and every call names a tool of the row's list (when it has one);
there is at least one assistant message. The only normalisations, both lossless for training: an
assistant's null content is "", and in ShareGPT the whitespace between a turn's text and its calls
is the chat template's.

Files are read as bytes, line by line: row N is line N (blank lines are not rows), and a line that is
not UTF-8 (Latin-1, binary), not JSON, too long (`MAX_LINE_BYTES`) or nested too deeply is a bad row
like any other. `on_error="skip"` keeps the good rows and reports each bad one by row number with its
reason; `"reject"` raises on the first bad row. `ImportReport` counts read, kept and skipped rows and
lists every error; `write_rows` writes kept rows in the `openai` format `chord_env.trainer.expert`
loads (`chord-env data import` does both), with arguments as JSON objects and tool lists as lists,
as `chord-env data build` writes them.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from chord_env.chat import template_message
from chord_env.types import ROLES, Message, ToolCall, ToolSpec

MAX_DEPTH = 64
MAX_LINE_BYTES = 16 * 2**20
HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"

_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "tool": "tool", "observation": "tool", "function_response": "tool"}
_MESSAGE_KEYS = {"role", "content", "tool_calls", "tool_call_id", "name"}
_JSON_SPACE = b" \t\r\n"  # a line of only these is blank, not a row
_MAX_INT_BITS = 14_000  # below Python's 4300-digit limit on int <-> str
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RowError(ValueError):
    """A bad row under `on_error="reject"`."""


@dataclass
class _BadLine:
    """A line of a JSON-lines file that cannot be a row (reported like any bad row)."""

    message: str


@dataclass
class ImportedRow:
    """One imported conversation: its row number, its messages, the tools it offered (None: the row
    named no tool list, which is not the same as an empty one) and, when the row has `tools_shown`,
    those tools as the model is shown them."""

    number: int
    messages: list[Message]
    tools: list[ToolSpec] | None
    tools_shown: list[ToolSpec] | None = None

    @property
    def training_tools(self) -> list[ToolSpec]:
        """The tools a trace is rendered with for training: `tools_shown` when given, else `tools`."""
        return self.tools_shown if self.tools_shown is not None else self.tools or []

    def to_openai(self) -> dict[str, Any]:
        """The row in the `openai` format, arguments as JSON objects and tool lists as lists, as
        `chord-env data build` writes them."""
        out: dict[str, Any] = {"messages": [template_message(m) for m in self.messages]}
        for key, tools in (("tools", self.tools), ("tools_shown", self.tools_shown)):
            if tools is not None:
                out[key] = [t.to_openai() for t in tools]
        return out


@dataclass
class ImportReport:
    """What an import did: every row is either kept or listed in `errors` as (row number, reason)."""

    rows: list[ImportedRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    read: int = 0

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        lines = [f"read {self.read} rows: kept {len(self.rows)}, skipped {self.skipped}"]
        return "\n".join(lines + [f"  row {n}: {e}" for n, e in self.errors])


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, what: str, where: str = "") -> Any:
    """`text` parsed as strict JSON (no duplicate keys, NaN or Infinity) and checked by `json_problem`;
    otherwise ValueError "<where>invalid JSON <what>: <reason>"."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"{where}invalid JSON {what}: nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}invalid JSON {what}: {e.msg} at char {e.pos}") from None
    except ValueError as e:  # a duplicate key, NaN, an integer too long to convert
        raise ValueError(f"{where}invalid JSON {what}: {e}") from None
    if problem := json_problem(value):
        raise ValueError(f"{where}invalid JSON {what}: {problem}")
    return value


def json_problem(value: Any, depth_limit: int = MAX_DEPTH) -> str | None:
    """Why `value` is not plain JSON data this importer keeps as is, or None. Iterative, so any nesting
    (or a cycle) is reported rather than overflowing the stack."""
    stack = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        at = f" at {where}" if where else ""
        if depth > depth_limit:
            return f"nested deeper than {depth_limit} levels{at}"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"a string{at} is not valid Unicode (a lone surrogate)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"a number{at} is {item} (not finite)"
        elif isinstance(item, int) and item.bit_length() > _MAX_INT_BITS:
            return f"an integer{at} is too large to write as JSON text"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"a key{at} is {type(key).__name__}, not a string"
                stack.append((key, depth + 1, where))
                stack.append((child, depth + 1, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
        elif item is not None and not isinstance(item, (bool, int)):
            return f"a value{at} is {type(item).__name__}, not JSON"
    return None


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if value != value.strip() or _CONTROL.search(value):
        raise ValueError(f"{what} {value!r} has surrounding whitespace or control characters")
    return value


def _optional_str(data: dict[str, Any], key: str, what: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what}: {key} must be a string, got {type(value).__name__}")
    return value


def _only(data: dict[str, Any], allowed: set[str], what: str) -> None:
    if extra := sorted(set(data) - allowed):
        raise ValueError(f"{what}: unknown field {', '.join(map(repr, extra))} (would be dropped; known: {', '.join(sorted(allowed))})")


def _arguments(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{what}: arguments is an empty string (write {{}} for a call without arguments)")
        value = parse_json(value, "arguments", f"{what}: ")
    if not isinstance(value, dict):
        raise ValueError(f"{what}: arguments must be a JSON object, got {type(value).__name__}")
    return value


def _tool_call(data: Any, what: str) -> ToolCall:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be an object, got {type(data).__name__}")
    if "function" in data:
        _only(data, {"id", "type", "function"}, what)
        fn = data["function"]
        if not isinstance(fn, dict):
            raise ValueError(f"{what}: function must be an object, got {type(fn).__name__}")
        _only(fn, {"name", "arguments"}, f"{what}.function")
    else:
        _only(data, {"id", "type", "name", "arguments"}, what)
        fn = data
    if data.get("type", "function") != "function":
        raise ValueError(f"{what}: type must be 'function', got {data['type']!r}")
    if "arguments" not in fn:
        raise ValueError(f"{what}: arguments is missing (write {{}} for a call without arguments)")
    return ToolCall(_name(fn.get("name"), f"{what}: name"), _arguments(fn["arguments"], what), _optional_str(data, "id", what))


def _tools(row: dict[str, Any], key: str = "tools") -> list[ToolSpec] | None:
    raw = row.get(key)
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = parse_json(raw, key)
    if not isinstance(raw, list):
        raise ValueError(f"{key} must be a list of tool specs, got {type(raw).__name__}")
    out = []
    for i, spec in enumerate(raw):
        what = f"{key} {i}" if key != "tools" else f"tool {i}"
        if not isinstance(spec, dict):
            raise ValueError(f"{what} must be an object, got {type(spec).__name__}")
        if "function" in spec:
            _only(spec, {"type", "function"}, what)
            if spec.get("type", "function") != "function":
                raise ValueError(f"{what}: type must be 'function', got {spec['type']!r}")
            fn = spec["function"]
            if not isinstance(fn, dict):
                raise ValueError(f"{what}: function must be an object, got {type(fn).__name__}")
        else:
            fn = spec
        _only(fn, {"name", "description", "parameters"}, what)
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"{what}: description must be a string, got {type(description).__name__}")
        parameters = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise ValueError(f"{what}: parameters must be a JSON Schema object, got {type(parameters).__name__}")
        out.append(ToolSpec(_name(fn.get("name"), f"{what}: name"), description, parameters))
    names = [t.name for t in out]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{key}: duplicate names {duplicates}")
    return out


def _openai_messages(row: dict[str, Any]) -> list[Message]:
    if not isinstance(row.get("messages"), list):
        raise ValueError("missing field 'messages' (a list)")
    out = []
    for i, m in enumerate(row["messages"]):
        what = f"message {i}"
        if not isinstance(m, dict) or "role" not in m:
            raise ValueError(f"{what}: missing field 'role'")
        _only(m, _MESSAGE_KEYS, what)
        role = m["role"]
        if role not in ROLES:
            raise ValueError(f"{what}: role must be one of {', '.join(ROLES)}, got {role!r}")
        content = m.get("content")
        if not isinstance(content, str) and not (content is None and role == "assistant"):
            kind = "missing" if content is None else type(content).__name__
            raise ValueError(f"{what}: content must be a string, got {kind}")
        calls = m.get("tool_calls")
        calls = [] if calls is None else calls
        if not isinstance(calls, list):
            raise ValueError(f"{what}: tool_calls must be a list, got {type(calls).__name__}")
        if calls and role != "assistant":
            raise ValueError(f"{what}: a {role} message has tool_calls")
        out.append(Message(role, content or "", [_tool_call(c, f"{what}: tool call {k}") for k, c in enumerate(calls)],
                           _optional_str(m, "tool_call_id", what), _optional_str(m, "name", what)))
    return out


def _hermes_turn(text: str, turn: int) -> Message:
    """Assistant turn `turn`'s text -> Message: the text before the first `<tool_call>` is the content."""
    what = f"turn {turn}"
    first = text.find(HERMES_OPEN)
    if first < 0:
        if HERMES_CLOSE in text:
            raise ValueError(f"{what}: {HERMES_CLOSE} without {HERMES_OPEN}")
        return Message("assistant", text)
    calls, pos = [], first
    while pos < len(text):
        start = text.find(HERMES_OPEN, pos)
        if start < 0:
            if text[pos:].strip():
                raise ValueError(f"{what}: text after the tool calls (the chat template puts it before them)")
            break
        if text[pos:start].strip():
            raise ValueError(f"{what}: text between tool calls (the chat template puts it before them)")
        close = text.find(HERMES_CLOSE, start)
        if close < 0:
            raise ValueError(f"{what}: unclosed {HERMES_OPEN}")
        call_what = f"{what}: tool call {len(calls)}"
        obj = parse_json(text[start + len(HERMES_OPEN) : close], f"in tool call {len(calls)}", f"{what}: ")
        if not isinstance(obj, dict):
            raise ValueError(f"{call_what} must be an object, got {type(obj).__name__}")
        _only(obj, {"name", "arguments"}, call_what)
        if "arguments" not in obj:
            raise ValueError(f"{call_what}: arguments is missing (write {{}} for a call without arguments)")
        calls.append(ToolCall(_name(obj.get("name"), f"{call_what}: name"), _arguments(obj["arguments"], call_what), f"call_{turn}_{len(calls)}"))
        pos = close + len(HERMES_CLOSE)
    return Message("assistant", text[:first].rstrip(), tool_calls=calls)


def _sharegpt_messages(row: dict[str, Any]) -> list[Message]:
    if not isinstance(row.get("conversations"), list):
        raise ValueError("missing field 'conversations' (a list)")
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise ValueError(f"system must be a string, got {type(system).__name__}")
    out = [Message("system", system)] if system is not None else []
    for i, turn in enumerate(row["conversations"]):
        what = f"turn {i}"
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise ValueError(f"{what}: missing field 'from' or 'value'")
        _only(turn, {"from", "value"}, what)
        role = _SHAREGPT_ROLES.get(turn["from"]) if isinstance(turn["from"], str) else None
        if role is None:
            raise ValueError(f"{what}: unknown role {turn['from']!r}")
        text = turn["value"]
        if not isinstance(text, str):
            raise ValueError(f"{what}: value must be a string, got {type(text).__name__}")
        out.append(_hermes_turn(text, i) if role == "assistant" else Message(role, text))
    return out


def convert_row(row: Any, fmt: str, number: int = 0) -> ImportedRow:
    """One row in `fmt` ("openai" or "sharegpt") -> ImportedRow; ValueError says what is wrong."""
    if isinstance(row, _BadLine):
        raise ValueError(row.message)
    if not isinstance(row, dict):
        raise ValueError(f"row is not an object but {type(row).__name__}")
    if problem := json_problem(row):
        raise ValueError(problem)
    messages = _openai_messages(row) if fmt == "openai" else _sharegpt_messages(row)
    tools, shown = _tools(row), _tools(row, "tools_shown")
    if not any(m.role == "assistant" for m in messages):
        raise ValueError("no assistant message")
    if shown is not None and (tools is None or [t.name for t in shown] != [t.name for t in tools]):
        raise ValueError("tools_shown must name the same tools as tools, in the same order")
    if tools is not None:
        names = {t.name for t in tools}
        for m in messages:
            for c in m.tool_calls:
                if c.name not in names:
                    raise ValueError(f"unknown tool {c.name!r}: the row offers {sorted(names)}")
    return ImportedRow(number, messages, tools, shown)


def _import(numbered: Iterable[tuple[int, Any]], fmt: str, on_error: str) -> ImportReport:
    if fmt not in ("openai", "sharegpt"):
        raise ValueError(f"format must be 'openai' or 'sharegpt', got {fmt!r}")
    if on_error not in ("skip", "reject"):
        raise ValueError(f"on_error must be 'skip' or 'reject', got {on_error!r}")
    report = ImportReport()
    for number, row in numbered:
        report.read += 1
        try:
            report.rows.append(convert_row(row, fmt, number))
        except ValueError as e:
            if on_error == "reject":
                raise RowError(f"row {number}: {e}") from None
            report.errors.append((number, str(e)))
    return report


def import_rows(rows: Iterable[Any], fmt: str = "openai", on_error: str = "skip") -> ImportReport:
    """Convert and check rows, numbered from 1; see the module docstring for `on_error`."""
    return _import(enumerate(rows, 1), fmt, on_error)


def read_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row or a `_BadLine`) for each non-blank line of a JSON-lines file."""
    with Path(path).open("rb") as f:
        number = 0
        while line := f.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := f.readline(2**20)) and not rest.endswith(b"\n"):
                    pass
                yield number, _BadLine(f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            if not line.strip(_JSON_SPACE):
                continue
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                yield number, _BadLine(f"not UTF-8 text (byte {line[e.start]:#04x} at {e.start}); convert the file to UTF-8")
                continue
            try:
                yield number, parse_json(text, "line")
            except ValueError as e:
                yield number, _BadLine(str(e))


def import_file(path: str | Path, fmt: str = "openai", on_error: str = "skip") -> ImportReport:
    """Import a JSON-lines file; row N is line N, and a line that is not a row is a bad row like any other."""
    return _import(read_lines(path), fmt, on_error)


def write_rows(path: str | Path, rows: Iterable[ImportedRow]) -> int:
    """Write rows as `openai`-format JSON lines (a temporary file renamed into place); returns the count."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row.to_openai(), ensure_ascii=False) + "\n")
                count += 1
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
