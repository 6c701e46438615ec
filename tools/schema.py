"""`@tool`: a typed, documented Python function becomes a `Tool` with an OpenAI-format JSON Schema.

The schema is generated from the signature, never written by hand. Supported annotations: `str`,
`int`, `float` (number), `bool`, `Literal[...]` (enum), `enum.Enum` subclasses (enum of their
values), `X | None` / `Optional[X]`, `list[X]`, `dict[str, X]`, and nested `@dataclass` or
`TypedDict` classes (objects with properties, required keys and no additional properties).
Parameters with a default are optional and carry it as `default`. Anything else, or a missing
annotation, raises `TypeError` at decoration time naming the function and parameter.

Descriptions come from the docstring: the text before the first section is the tool's description,
and the `Args:` section (Google style) or `:param name:` fields (reST) describe the parameters; a
dataclass or TypedDict documents its fields the same way (`Args:` or `Attributes:`).

Alongside each schema, a converter is built that turns validated JSON values into what the function
expects: dicts into dataclass instances, values into Enum members, ints into floats for `float`, and
integral floats into ints for `int` (JSON Schema counts `1.0` as an integer). `Tool.prepare` applies
them. Both are built once, at decoration, so a call costs one validation and the conversions it needs.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Union, overload

import jsonschema

from chord_env.types import ToolSpec

Converter = Callable[[Any], Any]
_SCALARS: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_JSON_TYPES: dict[type, str] = {**_SCALARS, type(None): "null"}
_SECTION = re.compile(r"^(\w[\w ]*):\s*$")
_ARG_SECTIONS = ("args", "arguments", "parameters", "params", "attributes", "keyword args")
_REST_FIELD = re.compile(r"^:(\w+)([^:]*):\s*(.*)$")


@dataclass(frozen=True, eq=False)
class Tool:
    """A function the agent may call, with its spec, limits and argument validator.

    `tool_obj(**kwargs)` calls the function directly. `execute` (in `chord_env.tools.execute`)
    validates a model's arguments with `validator`, converts them with `prepare`, and runs the call
    within `timeout` seconds (`None`: inline, no limit), capping the output at `max_output_chars`.
    """

    name: str
    description: str
    fn: Callable[..., Any]
    spec: ToolSpec
    timeout: float | None
    max_output_chars: int
    validator: jsonschema.Draft202012Validator = field(repr=False)
    converters: Mapping[str, Converter] = field(repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def prepare(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validated JSON arguments -> keyword arguments for `fn` (dataclasses, Enum members)."""
        kwargs = dict(arguments)
        for name, convert in self.converters.items():
            if name in kwargs:
                kwargs[name] = convert(kwargs[name])
        return kwargs


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, timeout: float | None = 10.0, max_output_chars: int = 16_000
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    timeout: float | None = 10.0,
    max_output_chars: int = 16_000,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed, documented function into a `Tool`; usable as `@tool` or `@tool(...)`.

    `timeout` is in seconds (`None` runs the call inline with no limit); `max_output_chars` caps the
    text sent back to the agent. Raises `TypeError` for unsupported or missing annotations.
    """

    def build(f: Callable[..., Any]) -> Tool:
        return _build(f, name or f.__name__, timeout, max_output_chars)

    return build if fn is None else build(fn)


def _build(fn: Callable[..., Any], name: str, timeout: float | None, max_output_chars: int) -> Tool:
    where = f"tool {fn.__qualname__!r}"
    description, param_docs = parse_docstring(fn.__doc__)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:
        raise TypeError(f"{where}: cannot resolve annotations: {e}") from e
    properties: dict[str, Any] = {}
    required: list[str] = []
    converters: dict[str, Converter] = {}
    for param in inspect.signature(fn).parameters.values():
        at = f"{where}, parameter {param.name!r}"
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"{at}: only named parameters are supported, not {param.kind.description}")
        if param.name not in hints:
            raise TypeError(f"{at}: missing type annotation")
        schema, convert = _schema(hints[param.name], at, ())
        if param.name in param_docs:
            schema["description"] = param_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        else:
            schema["default"] = _json_default(param.default, at)
        properties[param.name] = schema
        if convert is not None:
            converters[param.name] = convert
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    jsonschema.Draft202012Validator.check_schema(parameters)
    return Tool(
        name=name,
        description=description,
        fn=fn,
        spec=ToolSpec(name=name, description=description, parameters=parameters),
        timeout=timeout,
        max_output_chars=max_output_chars,
        validator=jsonschema.Draft202012Validator(parameters),
        converters=converters,
    )


def _schema(tp: Any, at: str, seen: tuple[type, ...]) -> tuple[dict[str, Any], Converter | None]:
    """JSON Schema for one annotation, and the converter its JSON values need (None: identity)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is int:
        return {"type": "integer"}, _to_int
    if tp is float:
        return {"type": "number"}, _to_float
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}, None
    if origin is Literal:
        if not all(type(v) in _JSON_TYPES for v in args):
            raise TypeError(f"{at}: Literal values must be str, int, float, bool or None: {tp!r}")
        return _enum_schema(list(args)), None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        if not all(type(v) in _JSON_TYPES for v in values):
            raise TypeError(f"{at}: enum {tp.__name__} values must be str, int, float, bool or None")
        return _enum_schema(values), tp
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"{at}: only `X | None` unions are supported, not {tp!r}")
        inner, convert = _schema(rest[0], at, seen)
        if set(inner) == {"type"} and isinstance(inner["type"], str):
            schema = {"type": [inner["type"], "null"]}
        else:
            schema = {"anyOf": [inner, {"type": "null"}]}
        return schema, None if convert is None else (lambda v: None if v is None else convert(v))
    if origin is list and len(args) == 1:
        items, convert = _schema(args[0], at, seen)
        return {"type": "array", "items": items}, None if convert is None else (lambda v: [convert(x) for x in v])
    if origin is dict and len(args) == 2 and args[0] is str:
        values, convert = _schema(args[1], at, seen)
        schema = {"type": "object", "additionalProperties": values}
        return schema, None if convert is None else (lambda v: {k: convert(x) for k, x in v.items()})
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or typing.is_typeddict(tp)):
        return _object_schema(tp, at, seen)
    raise TypeError(f"{at}: unsupported annotation {tp!r}")


def _object_schema(cls: type, at: str, seen: tuple[type, ...]) -> tuple[dict[str, Any], Converter | None]:
    """Schema and converter for a dataclass (built into an instance) or a TypedDict (stays a dict)."""
    if cls in seen:
        raise TypeError(f"{at}: recursive type {cls.__name__} is not supported")
    at = f"{at}, in {cls.__name__}"
    hints = typing.get_type_hints(cls)
    doc = cls.__doc__ if _has_own_doc(cls) else None
    description, field_docs = parse_docstring(doc)
    if dataclasses.is_dataclass(cls):
        fields = [f for f in dataclasses.fields(cls) if f.init]
        names = [f.name for f in fields]
        defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
        required = [
            f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
    else:
        names = list(hints)
        defaults = {}
        required = [n for n in names if n in cls.__required_keys__]
    properties: dict[str, Any] = {}
    converters: dict[str, Converter] = {}
    for name in names:
        schema, convert = _schema(hints[name], f"{at}.{name}", (*seen, cls))
        if name in field_docs:
            schema["description"] = field_docs[name]
        if name in defaults:
            schema["default"] = _json_default(defaults[name], f"{at}.{name}")
        properties[name] = schema
        if convert is not None:
            converters[name] = convert
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    if description:
        schema["description"] = description

    def convert(value: dict[str, Any]) -> Any:
        kwargs = {k: converters[k](v) if k in converters else v for k, v in value.items()}
        return cls(**kwargs) if dataclasses.is_dataclass(cls) else kwargs

    return schema, convert if dataclasses.is_dataclass(cls) or converters else None


def _has_own_doc(cls: type) -> bool:
    """False for the `Name(a: int, ...)` docstring that @dataclass writes when there is none."""
    doc = cls.__dict__.get("__doc__")
    return bool(doc) and not (dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("))


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    kinds = {_JSON_TYPES[type(v)] for v in values}
    return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}


def _to_int(value: Any) -> Any:
    return int(value) if type(value) is float else value


def _to_float(value: Any) -> Any:
    return float(value) if type(value) is int else value


def _json_default(value: Any, at: str) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
    if type(value) in _JSON_TYPES:
        return value
    raise TypeError(f"{at}: default {value!r} is not a JSON scalar (use None and build it inside)")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style or reST docstring into (description, {parameter: description}).

    The description is the prose before the first section (`Args:`, `Returns:`, `:param x:`), its
    paragraphs kept and the lines inside each joined. Continuation lines of an entry are joined too.
    """
    prose: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    entry_indent = -1
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        field_match = _REST_FIELD.match(stripped)
        section_match = _SECTION.match(line) if indent == 0 else None
        if field_match:
            section = "rest"
            kind, target, text = field_match.groups()
            current = target.split()[-1] if kind == "param" and target.strip() else None
            if current:
                params[current] = text
        elif section_match:
            section, current, entry_indent = section_match.group(1).lower(), None, -1
        elif section is None:
            prose.append(stripped)
        elif not stripped:
            current = None if section == "rest" else current
        elif section in _ARG_SECTIONS and (entry_indent < 0 or indent <= entry_indent) and ":" in stripped:
            entry_indent = indent
            head, _, text = stripped.partition(":")
            current = head.split("(")[0].strip().lstrip("*")
            params[current] = text.strip()
        elif current is not None and (section == "rest" or indent > entry_indent):
            params[current] = f"{params[current]} {stripped}".strip()
    paragraphs = (" ".join(p.split()) for p in "\n".join(prose).split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p), params
