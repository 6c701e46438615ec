"""The calculator tool: correct values, and every unsafe or unsupported expression refused fast."""

from __future__ import annotations

import math
import time

import pytest

from chord_env.tools import calculator, execute
from chord_env.tools.calculator import MAX_LENGTH, evaluate
from chord_env.types import ToolCall


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-(3) + +4", 1),
        ("sqrt(16)", 4.0),
        ("sin(0) + cos(0)", 1.0),
        ("tan(pi / 4)", pytest.approx(1.0)),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("log10(1000)", 3.0),
        ("exp(0)", 1.0),
        ("abs(-2.5)", 2.5),
        ("round(2.567, 2)", 2.57),
        ("floor(2.7) + ceil(2.1)", 5),
        ("factorial(5)", 120),
        ("2 ** 9999", 2**9999),
        ("1.5e3", 1500.0),
        ("-" * 100 + "1", 1),
    ],
)
def test_values(expression: str, expected: object) -> None:
    assert evaluate(expression) == expected


def test_tool_returns_text() -> None:
    result = execute(ToolCall("calculator", {"expression": "factorial(20)"}), {"calculator": calculator})
    assert result.error is None and result.content == str(math.factorial(20))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**9**9", "too large"),
        ("10**10**10", "too large"),
        ("(2**9000) * (2**9000)", "too large"),
        ("factorial(100000)", "from 0 to"),
        ("factorial(2.5)", "needs an integer"),
        ("__import__('os')", "unknown function '__import__'"),
        ("os.system('ls')", "unsupported syntax: Call"),
        ("(1).__class__", "unsupported syntax: Attribute"),
        ("pi.real", "unsupported syntax: Attribute"),
        ("x + 1", "unknown name 'x'"),
        ("[1, 2]", "unsupported syntax: List"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("lambda: 1", "unsupported syntax: Lambda"),
        ("1 << 100000", "unsupported syntax: BinOp"),
        ("sqrt(x=4)", "unsupported syntax: Call"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "sqrt(): math domain error"),
        ("exp(1000)", "too large"),
        ("10.0 ** 400", "too large"),
        ("(-8) ** (1 / 3)", "not a real number"),
        ("1e308 * 10", "not a finite number"),
        ("sqrt(1, 2)", "argument"),
        ("1 +", "invalid expression"),
        ("1" * (MAX_LENGTH + 1), "too long"),
        ("-" * (MAX_LENGTH - 1) + "1", "nested too deeply"),
        ("(" * 300 + "1" + ")" * 300, "invalid expression"),
    ],
)
def test_refused(expression: str, message: str) -> None:
    start = time.monotonic()
    with pytest.raises(ValueError) as info:
        evaluate(expression)
    assert message in str(info.value)
    assert time.monotonic() - start < 0.5


def test_refusal_reaches_the_agent() -> None:
    result = execute(ToolCall("calculator", {"expression": "__import__('os')"}), {"calculator": calculator})
    assert result.error == "tool_exception" and result.content.startswith("Error: calculator raised ValueError:")
