"""Tool-call parsing: the assistant's text -> tool calls, for the three formats models emit.

- `hermes`: calls inside `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` tags, several per
  message, text around them is content. The convention of NousResearch's Hermes function calling
  (github.com/NousResearch/Hermes-Function-Calling) as rendered by the Qwen2.5 chat template.
- `json`: the message is, or contains (also inside a ```json fence), a call object or a list of call
  objects, `{"name", "arguments"}` (Llama 3.1 writes `"parameters"`, accepted as an alias) or the
  OpenAI shape `{"type": "function", "function": {"name", "arguments": "<json string>"}}`.
- `pythonic`: `[get_weather(city="Paris"), math.factorial(n=5)]` or one bare call, the format of
  BFCL's prompting models and Llama 3.2's pythonic tool calls. Parsed with `ast` and
  `ast.literal_eval` on each keyword value: the text is never evaluated.

Every parser takes any `str`, never raises and runs in time linear in the input. Inputs longer than
`MAX_CHARS` are refused with an error; nesting deeper than Python's recursion limit (JSON) or than
the Python parser's 200 levels (pythonic) is reported as an error.

Errors follow one policy for all formats: a malformed call sets `error` to a short message meant for
the agent ("invalid JSON in <tool_call> #2: Expecting ',' delimiter at char 17"; several are joined
with "; ") and `calls` keeps the calls that were well formed, so an env can report precisely what
went wrong and still decide itself whether to run the rest. A call block that is not closed counts
as malformed. Arguments are JSON values: NaN and infinities are refused.

The `format_*` functions are the inverses used to write expert traces:
`parse_X(format_X(calls, content))` gives back the calls (ids are not part of any text format, so they
come back as None) and the stripped content. `format_hermes` writes exactly what `chat.HERMES_TEMPLATE`
renders for an assistant message, so traces and rendered conversations agree token for token.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from chord_env.types import ToolCall

MAX_CHARS = 1_000_000
"""Longest text a parser accepts (about 250k tokens, far beyond any model turn)."""

HERMES_OPEN = "<tool_call>"
HERMES_CLOSE = "</tool_call>"
HERMES_CLOSE_ESCAPED = "<\\/tool_call>"


@dataclass
class ParseResult:
    """The tool calls found in one assistant message, the text around them, and what went wrong."""

    calls: list[ToolCall] = field(default_factory=list)
    content: str = ""
    error: str | None = None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_SPACE = re.compile(r"\s*")


def _too_long(text: str) -> ParseResult | None:
    if len(text) <= MAX_CHARS:
        return None
    return ParseResult([], "", f"message too long to parse: {len(text)} characters > {MAX_CHARS}")


def _decode_at(text: str, pos: int) -> tuple[Any, int]:
    """`raw_decode` at `pos`; raises ValueError (with `.pos` when known) on any failure."""
    try:
        return _DECODER.raw_decode(text, pos)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _json_error(e: ValueError, origin: int) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at char {e.pos - origin}"
    return str(e)


def _call_from_object(obj: Any) -> ToolCall:
    """A `{"name", "arguments"}` or OpenAI-shaped object -> ToolCall; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    fn = obj["function"] if isinstance(obj.get("function"), dict) else obj
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("missing function name")
    args = fn.get("arguments", fn.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = _DECODER.decode(args) if args.strip() else {}
        except (ValueError, RecursionError) as e:
            raise ValueError(f"arguments string is not valid JSON ({_json_error(e, 0)})") from None
    if not isinstance(args, dict):
        raise ValueError(f"arguments must be an object, got {type(args).__name__}")
    return ToolCall(name=name, arguments=args)


def _result(calls: list[ToolCall], pieces: list[str], errors: list[str]) -> ParseResult:
    return ParseResult(calls, "".join(pieces).strip(), "; ".join(errors) if errors else None)


def parse_hermes(text: str) -> ParseResult:
    """Parse `<tool_call>{json}</tool_call>` blocks; the text outside them is the content.

    A block ends at the first `</tool_call>` after its opening tag, as in vLLM's Hermes tool parser;
    `format_hermes` and `chat.HERMES_TEMPLATE` write that tag inside an argument string as
    `<\\/tool_call>` (a valid JSON escape), so every call they write parses back.
    """
    if refused := _too_long(text):
        return refused
    calls: list[ToolCall] = []
    pieces: list[str] = []
    errors: list[str] = []
    pos = 0
    number = 0
    while (start := text.find(HERMES_OPEN, pos)) >= 0:
        pieces.append(text[pos:start])
        number += 1
        where = f"<tool_call> #{number}"
        body_start = start + len(HERMES_OPEN)
        close = text.find(HERMES_CLOSE, body_start)
        if close < 0:
            errors.append(f"unclosed {where}")
            pos = len(text)
            break
        pos = close + len(HERMES_CLOSE)
        body = text[body_start:close]
        try:
            obj, end = _decode_at(body, _SPACE.match(body).end())
        except ValueError as e:
            errors.append(f"invalid JSON in {where}: {_json_error(e, 0)}")
            continue
        if body[end:].strip():
            errors.append(f"invalid JSON in {where}: extra data at char {end}")
            continue
        try:
            calls.append(_call_from_object(obj))
        except ValueError as e:
            errors.append(f"bad call in {where}: {e}")
    pieces.append(text[pos:])
    return _result(calls, pieces, errors)


def _hermes_json(call: ToolCall) -> str:
    payload = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return payload.replace(HERMES_CLOSE, HERMES_CLOSE_ESCAPED)


def format_hermes(calls: list[ToolCall], content: str = "") -> str:
    """The assistant text for `calls` in Hermes format, as `chat.HERMES_TEMPLATE` renders it."""
    blocks = [f"{HERMES_OPEN}\n{_hermes_json(c)}\n{HERMES_CLOSE}" for c in calls]
    return "\n".join(([content] if content else []) + blocks)


_CALL_KEYS = ("name", "function", "arguments", "parameters", "type", "id")
_CALL_SHAPED = re.compile(r"(?:\[\s*)?\{\s*\"(?:" + "|".join(_CALL_KEYS) + r")\"")
_EMPTY_FENCE = re.compile(r"```[\w-]*\s*```")


def _is_call_object(value: Any) -> bool:
    return isinstance(value, dict) and ("name" in value or isinstance(value.get("function"), dict))


def _is_call_shaped(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return any(_is_call_object(item) for item in items)


def parse_json(text: str) -> ParseResult:
    """Parse call objects (or lists of them) written as JSON anywhere in the text.

    The text is scanned once from left to right for JSON that starts like a call (an object, or a
    list of objects, whose first key is one of `_CALL_KEYS`), with one `raw_decode` at each such
    place. A decoded value that holds no call (`{"type": "object", ...}`) is content and the scan
    goes on after it; JSON that fails to decode is an error and ends the scan (so no failure is
    paid for twice: building a JSONDecodeError costs time linear in the text).
    """
    if refused := _too_long(text):
        return refused
    calls: list[ToolCall] = []
    pieces: list[str] = []
    errors: list[str] = []
    pos = 0
    scan = 0
    number = 0
    while match := _CALL_SHAPED.search(text, scan):
        start = match.start()
        try:
            value, end = _decode_at(text, start)
        except ValueError as e:
            errors.append(f"invalid JSON in tool call #{number + 1}: {_json_error(e, start)}")
            break
        scan = end
        if not _is_call_shaped(value):
            continue
        pieces.append(text[pos:start])
        pos = end
        for item in value if isinstance(value, list) else [value]:
            number += 1
            try:
                calls.append(_call_from_object(item))
            except ValueError as e:
                errors.append(f"bad tool call #{number}: {e}")
    pieces.append(text[pos:])
    result = _result(calls, pieces, errors)
    if calls or errors:
        result.content = _EMPTY_FENCE.sub("", result.content).strip()
    return result


def format_json(calls: list[ToolCall], content: str = "") -> str:
    """The assistant text for `calls` as JSON: one object for one call, else a list of objects."""
    if not calls:
        return content
    objects = [{"name": c.name, "arguments": c.arguments} for c in calls]
    payload = json.dumps(objects[0] if len(objects) == 1 else objects, ensure_ascii=False)
    return f"{content}\n{payload}" if content else payload


_PY_CALL_START = re.compile(r"^[ \t]*(?:\[\s*)?[A-Za-z_][\w.]*[ \t]*\(", re.MULTILINE)
_FENCE = "```"


def _fenced(text: str) -> tuple[int, int] | None:
    """Bounds of the inside of the first ``` fenced block (after its language line), if any."""
    open_at = text.find(_FENCE)
    if open_at < 0:
        return None
    line_end = text.find("\n", open_at)
    if line_end < 0:
        return None
    close_at = text.find(_FENCE, line_end)
    return (line_end + 1, close_at if close_at >= 0 else len(text))


def _dotted_name(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ValueError("the called function must be a (dotted) name")
    parts.append(node.id)
    return ".".join(reversed(parts))


def _json_value(value: Any) -> Any:
    """A literal from `ast.literal_eval` as a JSON value (tuples become lists)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a valid JSON number")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("dict keys must be strings")
        return {k: _json_value(v) for k, v in value.items()}
    raise ValueError(f"unsupported value of type {type(value).__name__}")


def _python_call(node: ast.expr, number: int) -> ToolCall:
    if not isinstance(node, ast.Call):
        raise ValueError(f"call #{number} is not a function call")
    try:
        name = _dotted_name(node.func)
    except ValueError as e:
        raise ValueError(f"call #{number}: {e}") from None
    if node.args:
        raise ValueError(f"call #{number} ({name}) has positional arguments; use name=value")
    arguments = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise ValueError(f"call #{number} ({name}) uses ** arguments")
        try:
            arguments[kw.arg] = _json_value(ast.literal_eval(kw.value))
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as e:
            raise ValueError(f"call #{number} ({name}) argument {kw.arg!r} is not a literal: {e}") from None
    return ToolCall(name=name, arguments=arguments)


def parse_pythonic(text: str) -> ParseResult:
    """Parse `[f(a=1), g.h(b="x")]` or one bare call `f(a=1)` (a tuple of calls is read as a list).

    The calls start at the first line that looks like a call (`name(` or `[name(`), inside the first
    ``` fence if the text has one, and run to the end of the text (or fence); the text before is
    content. Prose before the calls must not have a line starting with `word(`.
    """
    if refused := _too_long(text):
        return refused
    lo, hi = _fenced(text) or (0, len(text))
    match = _PY_CALL_START.search(text, lo, hi)
    if match is None:
        return ParseResult([], text.strip(), None)
    source = text[match.start() : hi]
    content = _pythonic_content(text, lo, hi, match.start())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        detail = getattr(e, "msg", None) or str(e) or type(e).__name__
        return ParseResult([], content, f"invalid Python call syntax: {detail}")
    nodes = tree.body.elts if isinstance(tree.body, (ast.List, ast.Tuple)) else [tree.body]
    calls: list[ToolCall] = []
    errors: list[str] = []
    for number, node in enumerate(nodes, 1):
        try:
            calls.append(_python_call(node, number))
        except ValueError as e:
            errors.append(str(e))
    return ParseResult(calls, content, "; ".join(errors) if errors else None)


def _pythonic_content(text: str, lo: int, hi: int, calls_start: int) -> str:
    """The text outside the calls, without the fence that held them."""
    if (lo, hi) == (0, len(text)):
        return text[:calls_start].strip()
    fence_open = text.rfind(_FENCE, 0, lo)
    fence_end = min(hi + len(_FENCE), len(text))
    inside_before = text[lo:calls_start].strip()
    return "\n".join(p for p in (text[:fence_open].strip(), inside_before, text[fence_end:].strip()) if p)


def _is_keyword_name(name: str) -> bool:
    """True if Python reads `name` back as itself (identifiers are NFKC-normalised by the parser)."""
    return name.isidentifier() and not keyword.iskeyword(name) and unicodedata.normalize("NFKC", name) == name


def format_pythonic(calls: list[ToolCall], content: str = "") -> str:
    """The assistant text for `calls` as a Python list of keyword calls, after the content.

    Values are written with `repr`, which gives a Python literal for every JSON value. Raises
    ValueError for a tool name that is not a dotted identifier or an argument name that is not an
    identifier (those cannot be written as Python keyword calls).
    """
    rendered = []
    for c in calls:
        if not all(_is_keyword_name(p) for p in c.name.split(".")):
            raise ValueError(f"tool name {c.name!r} cannot be written as a Python call")
        for k in c.arguments:
            if not _is_keyword_name(k):
                raise ValueError(f"argument name {k!r} of {c.name} cannot be a Python keyword argument")
        args = ", ".join(f"{k}={v!r}" for k, v in c.arguments.items())
        rendered.append(f"{c.name}({args})")
    if not rendered:
        return content
    payload = f"[{', '.join(rendered)}]"
    return f"{content}\n{payload}" if content else payload


PARSERS: dict[str, Callable[[str], ParseResult]] = {
    "hermes": parse_hermes,
    "json": parse_json,
    "pythonic": parse_pythonic,
}

FORMATTERS: dict[str, Callable[[list[ToolCall], str], str]] = {
    "hermes": format_hermes,
    "json": format_json,
    "pythonic": format_pythonic,
}
