"""`execute`: every bad input the model can cause becomes an error result, never an exception."""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass

from chord_env.tools import ToolResult, execute, tool
from chord_env.types import ToolCall


class Unit(enum.Enum):
    CM = "cm"
    IN = "in"


@dataclass
class Box:
    width: float
    height: float
    unit: Unit = Unit.CM

    def __post_init__(self) -> None:
        if self.width < 0:
            raise ValueError("width must be >= 0")


@tool
def area(box: Box, scale: int = 1) -> str:
    """Area of a box.

    Args:
        box: The box.
        scale: A factor.
    """
    assert isinstance(box, Box) and isinstance(box.unit, Unit)
    return f"{box.width * box.height * scale} {box.unit.value}^2"


@tool(timeout=None)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def boom(message: str) -> str:
    """Raise."""
    raise RuntimeError(message)


@tool(timeout=0.5)
def hang() -> str:
    """Never returns in time."""
    time.sleep(3600)
    return "never"


@tool(max_output_chars=1000)
def flood() -> str:
    """Return 10 MB."""
    return "x" * 10_000_000


@tool(timeout=None)
def structured() -> dict:  # type: ignore[type-arg]
    """Return a dict with a non-JSON value."""
    return {"ü": 1, "when": Unit.CM}


TOOLS = {t.name: t for t in (area, add, boom, hang, flood, structured)}


def run(name: str, **arguments: object) -> ToolResult:
    return execute(ToolCall(name, dict(arguments)), TOOLS)


def test_success_with_dataclass_and_enum_conversion() -> None:
    result = run("area", box={"width": 2, "height": 3.5, "unit": "in"}, scale=2)
    assert result == ToolResult("area", "14.0 in^2", None, False)


def test_non_string_results_are_json() -> None:
    assert run("add", a=2, b=3).content == "5"
    assert run("structured").content == '{"ü": 1, "when": "Unit.CM"}'


def test_unknown_tool_lists_available_tools() -> None:
    result = execute(ToolCall("foo", {}), {"a": add, "b": boom})
    assert result.error == "unknown_tool"
    assert result.content == "Error: unknown tool 'foo'. Available tools: a, b."


def test_missing_argument() -> None:
    result = run("add", a=1)
    assert result.error == "invalid_arguments"
    assert result.content == "Error: invalid arguments for add: 'b' is a required property"


def test_extra_argument() -> None:
    result = run("add", a=1, b=2, c=3)
    assert result.error == "invalid_arguments"
    assert "'c' was unexpected" in result.content


def test_wrong_type() -> None:
    result = run("add", a="1", b=2)
    assert result.error == "invalid_arguments"
    assert "'1' is not of type 'integer'" in result.content


def test_wrong_nested_type_names_its_path() -> None:
    result = run("area", box={"width": "wide", "height": 1})
    assert result.error == "invalid_arguments"
    assert "'wide' is not of type 'number'" in result.content and "$.box.width" in result.content


def test_bad_enum_value() -> None:
    result = run("area", box={"width": 1, "height": 1, "unit": "mile"})
    assert result.error == "invalid_arguments" and "'mile' is not one of ['cm', 'in']" in result.content


def test_arguments_not_an_object() -> None:
    result = execute(ToolCall("add", [1, 2]), TOOLS)  # type: ignore[arg-type]
    assert result.error == "invalid_arguments"


def test_huge_bad_argument_gives_a_short_message() -> None:
    result = run("add", a="z" * 100_000, b=1)
    assert result.error == "invalid_arguments" and len(result.content) < 500


def test_dataclass_post_init_error_is_invalid_arguments() -> None:
    result = run("area", box={"width": -1, "height": 1})
    assert result.error == "invalid_arguments"
    assert "ValueError: width must be >= 0" in result.content


def test_tool_exception() -> None:
    result = run("boom", message="it broke")
    assert result.error == "tool_exception"
    assert result.content == "Error: boom raised RuntimeError: it broke"
    assert "Traceback" not in result.content


def test_timeout_then_fresh_worker() -> None:
    start = time.monotonic()
    result = run("hang")
    assert time.monotonic() - start < 1.5
    assert result.error == "timeout" and "0.5 s" in result.content
    assert run("area", box={"width": 1, "height": 2}) == ToolResult("area", "2.0 cm^2")


def test_inline_tool_exception() -> None:
    @tool(timeout=None)
    def inline_boom() -> str:
        """Raise inline."""
        raise KeyError("k")

    result = execute(ToolCall("inline_boom", {}), {"inline_boom": inline_boom})
    assert result.error == "tool_exception" and result.content == "Error: inline_boom raised KeyError: 'k'"


def test_system_exit_in_worker_is_reported() -> None:
    @tool
    def quitter() -> str:
        """Exit."""
        raise SystemExit(3)

    result = execute(ToolCall("quitter", {}), {"quitter": quitter})
    assert result.error == "tool_exception" and "SystemExit: 3" in result.content


def test_output_truncated() -> None:
    result = run("flood")
    assert result.error is None and result.truncated
    assert result.content == "x" * 1000 + "\n[... truncated 9999000 characters]"


def test_concurrent_callers_get_their_own_replies() -> None:
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = run("area", box={"width": i, "height": 1}).content

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"{float(i)} cm^2" for i in range(8)}
