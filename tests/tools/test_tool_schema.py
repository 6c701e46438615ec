"""`@tool`: JSON Schema generation for every supported annotation, docstring parsing, refusals."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Optional, TypedDict

import pytest

from chord_env.tools import Tool, tool
from chord_env.tools.schema import parse_docstring


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclass
class Point:
    """A point on the plane.

    Attributes:
        x: Horizontal coordinate.
        y: Vertical coordinate.
    """

    x: float
    y: float = 0.0


@dataclass
class Shape:
    name: str
    corners: list[Point]
    color: Color = Color.RED
    tags: list[str] = field(default_factory=list)


class Person(TypedDict):
    name: str
    age: int


def test_scalars_defaults_and_descriptions() -> None:
    @tool
    def f(s: str, i: int, x: float, b: bool = True, n: int = 3) -> str:
        """Do something useful.

        More details on a second line
        and a third.

        Args:
            s: A string
                spanning two lines.
            i (int): An integer.
            x: A number.
            b: A flag.

        Returns:
            Nothing interesting.
        """
        return ""

    assert isinstance(f, Tool)
    assert f.name == "f" and f.description == "Do something useful.\n\nMore details on a second line and a third."
    params = f.spec.parameters
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert params["required"] == ["s", "i", "x"]
    assert params["properties"] == {
        "s": {"type": "string", "description": "A string spanning two lines."},
        "i": {"type": "integer", "description": "An integer."},
        "x": {"type": "number", "description": "A number."},
        "b": {"type": "boolean", "description": "A flag.", "default": True},
        "n": {"type": "integer", "default": 3},
    }
    assert f.spec.to_openai()["function"]["name"] == "f"


def test_rest_docstring() -> None:
    @tool
    def g(a: str, b: int) -> str:
        """Summary line.

        :param a: First
            argument.
        :param int b: Second argument.
        :returns: something.
        """
        return a * b

    props = g.spec.parameters["properties"]
    assert g.description == "Summary line."
    assert props["a"]["description"] == "First argument."
    assert props["b"]["description"] == "Second argument."
    assert g(a="x", b=3) == "xxx"


def test_literal_enum_optional() -> None:
    @tool
    def f(mode: Literal["fast", "slow"], color: Color, k: Optional[int], name: str | None = None) -> str:
        """F."""
        return ""

    props = f.spec.parameters["properties"]
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert props["color"] == {"type": "string", "enum": ["red", "green"]}
    assert props["k"] == {"type": ["integer", "null"]}
    assert props["name"] == {"type": ["string", "null"], "default": None}
    assert f.spec.parameters["required"] == ["mode", "color", "k"]


def test_list_dict_dataclass_typeddict() -> None:
    @tool
    def f(shape: Shape, people: list[Person], scores: dict[str, float], where: Optional[Point] = None) -> str:
        """F."""
        return ""

    props = f.spec.parameters["properties"]
    point = {
        "type": "object",
        "description": "A point on the plane.",
        "properties": {
            "x": {"type": "number", "description": "Horizontal coordinate."},
            "y": {"type": "number", "description": "Vertical coordinate.", "default": 0.0},
        },
        "required": ["x"],
        "additionalProperties": False,
    }
    assert props["shape"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "corners": {"type": "array", "items": point},
            "color": {"type": "string", "enum": ["red", "green"], "default": "red"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "corners"],
        "additionalProperties": False,
    }
    assert props["people"] == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    }
    assert props["scores"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["where"] == {"anyOf": [point, {"type": "null"}], "default": None}


def test_prepare_builds_dataclasses_and_enums() -> None:
    @tool
    def f(shape: Shape, colors: list[Color], n: int, where: Point | None = None) -> str:
        """F."""
        return ""

    shape = {"name": "tri", "corners": [{"x": 1}], "color": "green"}
    kwargs = f.prepare({"shape": shape, "colors": ["red"], "n": 2.0, "where": None})
    assert kwargs["shape"] == Shape("tri", [Point(1.0)], Color.GREEN)
    assert type(kwargs["shape"].corners[0].x) is float
    assert kwargs["colors"] == [Color.RED]
    assert kwargs["n"] == 2 and type(kwargs["n"]) is int
    assert kwargs["where"] is None


def test_decorator_options() -> None:
    @tool(name="renamed", timeout=None, max_output_chars=10)
    def f() -> str:
        """F."""
        return "hi"

    assert (f.name, f.spec.name, f.timeout, f.max_output_chars) == ("renamed", "renamed", None, 10)
    assert f() == "hi"
    assert f.spec.parameters["properties"] == {} and f.spec.parameters["required"] == []


def test_missing_annotation_names_function_and_parameter() -> None:
    with pytest.raises(TypeError, match=r"'.*bad'.*'y'.*missing type annotation"):

        @tool
        def bad(x: int, y) -> str:  # type: ignore[no-untyped-def]
            return ""


@pytest.mark.parametrize(
    "annotation",
    ["object", "list", "tuple[int, int]", "dict[int, str]", "int | str", "set[int]", "bytes", "Literal[b'x']"],
)
def test_unsupported_annotations_raise(annotation: str) -> None:
    namespace: dict = {"Literal": Literal}
    exec(f"def weird(a: {annotation}) -> str:\n    return ''", namespace)
    with pytest.raises(TypeError, match=r"'weird'.*'a'"):
        tool(namespace["weird"])


def test_varargs_and_bad_default_raise() -> None:
    with pytest.raises(TypeError, match="only named parameters"):

        @tool
        def f(*args: int) -> str:
            return ""

    with pytest.raises(TypeError, match="default"):

        @tool
        def g(x: Point = Point(1.0)) -> str:
            return ""


def test_recursive_dataclass_raises() -> None:
    @dataclass
    class Node:
        children: list[Node]

    globals()["Node"] = Node
    try:
        with pytest.raises(TypeError, match="recursive"):

            @tool
            def f(n: Node) -> str:
                return ""

    finally:
        del globals()["Node"]


def test_parse_docstring_edge_cases() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("Just a summary.") == ("Just a summary.", {})
    desc, params = parse_docstring("S.\n\nArgs:\n    *names: Names.\n    x (int, optional): X.\n")
    assert desc == "S." and params == {"names": "Names.", "x": "X."}
