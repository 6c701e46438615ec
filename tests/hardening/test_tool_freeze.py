"""No tool can freeze the process: the calculator bounds every operation before computing it.

CPython computes on integers while holding the GIL, so a calculator call that builds a giant integer
stops every thread, and `execute`'s timeout fires only afterwards. The sweep below evaluates every
operator and function on the largest operands the calculator admits and on hostile second
arguments, in a child process with a deadline: a bounded evaluator finishes the whole sweep in well
under a second (each step costs microseconds on operands of at most `MAX_INT_BITS` bits), while an
unbounded one spends a minute or more on a single `round(1, -3*10**7)`.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

from chord_env.tools.calculator import _BINARY, _FUNCTIONS, MAX_INT_BITS, MAX_ROUND_DIGITS, evaluate

OPERANDS = [
    "0", "1", "-1", "0.5", "1e308", "-1e-308",
    f"2**{MAX_INT_BITS - 1}", f"-2**{MAX_INT_BITS - 1}", "factorial(1000)",
    "-3*10**7", "10**3000", "-10**3000",
]
SYMBOLS = {"Add": "+", "Sub": "-", "Mult": "*", "Div": "/", "FloorDiv": "//", "Mod": "%", "Pow": "**"}
DEADLINE_S = 60  # the sweep takes well under 1 s even on a loaded 2-core machine

_SWEEP = """
import json, sys
from chord_env.tools.calculator import evaluate
for expression in json.loads(sys.stdin.read()):
    print(expression, flush=True)
    try:
        evaluate(expression)
    except ValueError:
        pass
print("done", flush=True)
"""


def _expressions() -> list[str]:
    pairs = list(itertools.product(OPERANDS, repeat=2))
    binary = [f"({a}) {SYMBOLS[op.__name__]} ({b})" for op in _BINARY for a, b in pairs]
    unary = [f"{name}({a})" for name in _FUNCTIONS for a in OPERANDS]
    two_arguments = [f"{name}({a}, {b})" for name in _FUNCTIONS for a, b in pairs]
    return binary + unary + two_arguments


def test_every_operation_on_extreme_operands_finishes() -> None:
    expressions = _expressions()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SWEEP], input=json.dumps(expressions), capture_output=True, text=True,
            timeout=DEADLINE_S,
        )
    except subprocess.TimeoutExpired as e:
        printed = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
        stuck = printed.splitlines()[-1:]
        raise AssertionError(f"the calculator froze on {stuck} ({DEADLINE_S} s)") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "done"
    assert len(done.stdout.splitlines()) == len(expressions) + 1


def test_round_to_more_tens_than_any_operand_has_is_exactly_zero() -> None:
    assert 2**MAX_INT_BITS <= 10**MAX_ROUND_DIGITS // 2  # why the shortcut returns the exact value
    assert evaluate("round(1, -3*10**7)") == 0
    assert evaluate(f"round(2**{MAX_INT_BITS - 1}, -{MAX_ROUND_DIGITS})") == 0
    largest = 2 ** (MAX_INT_BITS - 1)
    assert evaluate(f"round(2**{MAX_INT_BITS - 1}, {1 - MAX_ROUND_DIGITS})") == round(largest, 1 - MAX_ROUND_DIGITS)
    assert evaluate("round(1.5, 10**9)") == 1.5
