"""The built-in `calculator` tool: safe arithmetic on a parsed expression tree, never `eval`.

The expression is parsed with `ast` and walked by a small evaluator that knows numbers, the
operators `+ - * / // % **`, unary `+ -`, parentheses, a whitelist of math functions and the
constants `pi` and `e`; any other node (names, attributes, subscripts, lambdas, ...) is refused.
Guards keep every evaluation fast: the expression length is capped, an integer power whose result
would exceed `MAX_INT_BITS` bits is refused before it is computed (so `9**9**9` fails at once),
every integer result is checked against the same bound, `factorial` takes at most
`MAX_FACTORIAL`, an integer rounded to a multiple of more than `10**MAX_ROUND_DIGITS` is 0 without
computing, and non-finite or complex results are refused. Errors raise `ValueError` with a message
for the agent.

Why this is enough to keep the process responsive. CPython computes on integers in C while holding
the GIL, so a thread timeout cannot interrupt a huge computation: every operation must be bounded
before it runs. Every operand is a literal (at most `MAX_LENGTH` characters), a float, or an earlier
result, so every integer operand has at most `MAX_INT_BITS` bits. On such operands `+ - * / // %`
cost microseconds, float operations and the math functions cost at most a pass over the operand
(an integer too big for a float raises `OverflowError`), and the three operations whose cost grows
with a value rather than an operand's size are bounded by that value: `**` by the result's size, `factorial` by its
argument, and `round(x, ndigits)` with a negative `ndigits`, which builds `10**-ndigits` (so
`round(1, -3*10**7)` would hold the GIL for a minute, `round(0, -2**9999)` forever). An integer
operand is below `2**MAX_INT_BITS`, itself at most half of `10**MAX_ROUND_DIGITS`, so rounding it to
a multiple of a larger power of ten gives exactly 0, which is returned at once.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable

from chord_env.tools.schema import tool

MAX_LENGTH = 1_000
MAX_INT_BITS = 10_000
MAX_FACTORIAL = 1_000
MAX_ROUND_DIGITS = math.ceil(MAX_INT_BITS * math.log10(2))

Number = int | float


def _factorial(n: Number) -> int:
    if isinstance(n, float):
        if not n.is_integer():
            raise ValueError(f"needs an integer, got {n!r}")
        n = int(n)
    if not 0 <= n <= MAX_FACTORIAL:
        raise ValueError(f"takes an integer from 0 to {MAX_FACTORIAL}, got {n}")
    return math.factorial(n)


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise ValueError(f"result too large: {base}**{exponent} has more than {MAX_INT_BITS} bits")
    return base**exponent


def _round(number: Number, ndigits: Number | None = None) -> Number:
    if isinstance(number, int) and isinstance(ndigits, int) and ndigits < -MAX_ROUND_DIGITS:
        return 0  # |number| < 2**MAX_INT_BITS <= 10**MAX_ROUND_DIGITS / 2: rounds to 0, exactly
    return round(number, ndigits)


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "exp": math.exp,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": _factorial,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression; raises `ValueError` for anything unsupported or unsafe."""
    if len(expression) > MAX_LENGTH:
        raise ValueError(f"expression too long: {len(expression)} characters (at most {MAX_LENGTH})")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        result = _eval(tree.body)
    except SyntaxError as e:
        raise ValueError(f"invalid expression: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError("expression is nested too deeply") from None
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    except OverflowError:
        raise ValueError("result too large") from None
    except TypeError as e:
        raise ValueError(str(e)) from None
    if isinstance(result, complex):
        raise ValueError("result is not a real number")
    if isinstance(result, float) and not math.isfinite(result):
        raise ValueError(f"result is not a finite number: {result}")
    return result


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            raise ValueError(f"unsupported constant {node.value!r}: only numbers are allowed")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _checked(_BINARY[type(node.op)](_eval(node.left), _eval(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id not in _CONSTANTS:
            raise ValueError(f"unknown name {node.id!r}; constants: {', '.join(_CONSTANTS)}")
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in _FUNCTIONS:
            raise ValueError(f"unknown function {node.func.id!r}; functions: {', '.join(_FUNCTIONS)}")
        args = [_eval(a) for a in node.args]
        try:
            return _checked(_FUNCTIONS[node.func.id](*args))
        except ValueError as e:
            raise ValueError(f"{node.func.id}(): {e}") from None
    raise ValueError(f"unsupported syntax: {type(node).__name__}")


def _checked(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError(f"result too large: an integer with more than {MAX_INT_BITS} bits")
    if isinstance(value, complex):
        raise ValueError("result is not a real number")
    return value


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result.

    Supports numbers, + - * / // % ** and parentheses, the functions sqrt, sin, cos, tan, asin,
    acos, atan, log (natural, or log(x, base)), log2, log10, exp, abs, round, floor, ceil and
    factorial, and the constants pi and e.

    Args:
        expression: The expression, e.g. "sqrt(2) * (3 + 4) ** 2".
    """
    return repr(evaluate(expression))
