"""The built-in environments (`chord/Arithmetic-v0`, `chord/Calculator-v0`, `chord/FunctionCall-v0`).

Each has a procedural task generator that draws one `Task` from a numpy generator, with its answer
and an expert solution, so the envs have endless seeded tasks and every scripted episode has a
known reward; and a factory function, the entry point `chord_env.register` points at.
"""

from __future__ import annotations

import operator

import numpy as np

from chord_env.envs.function_call_env import FunctionCallEnv
from chord_env.envs.math_env import MathEnv
from chord_env.envs.task import Task
from chord_env.envs.tool_env import ToolEnv
from chord_env.parsing import format_hermes
from chord_env.tools import calculator
from chord_env.types import ToolCall, ToolSpec

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def arithmetic_task(rng: np.random.Generator) -> Task:
    """A two-operation arithmetic word problem, answered in prose with a boxed result."""
    a, b, c = (int(x) for x in rng.integers(2, 100, size=3))
    op = "+-*"[int(rng.integers(3))]
    boxes = _OPS[op](a, b)
    question = f"A crate holds ({a} {op} {b}) boxes and each box holds {c} items. How many items are there in all?"
    expert = f"There are {a} {op} {b} = {boxes} boxes of {c} items each, so $\\boxed{{{boxes * c}}}$."
    return Task(prompt=question, answer=str(boxes * c), expert=[expert], id=f"arith-{a}{op}{b}x{c}")


def calculator_task(rng: np.random.Generator) -> Task:
    """An arithmetic question to be answered with the `calculator` tool (Hermes-format expert)."""
    a, b, c = (int(x) for x in rng.integers(10, 1000, size=3))
    op1, op2 = ("+-*"[int(i)] for i in rng.integers(3, size=2))
    expression = f"{a} {op1} {b} {op2} {c}"
    value = _evaluate(a, op1, b, op2, c)
    call = ToolCall("calculator", {"expression": expression})
    expert = [format_hermes([call], content="Let me compute that."), f"{expression} = {value}. The answer is {value}."]
    return Task(prompt=f"What is {expression}? Use the calculator.", answer=value, expert=expert, id=f"calc-{expression}")


def _evaluate(a: int, op1: str, b: int, op2: str, c: int) -> int:
    if op2 == "*" and op1 != "*":  # respect precedence: a op1 (b * c)
        return _OPS[op1](a, b * c)
    return _OPS[op2](_OPS[op1](a, b), c)


WEATHER = ToolSpec(
    name="get_weather",
    description="Get the current weather in a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
        },
        "required": ["city"],
    },
)
CONVERT = ToolSpec(
    name="convert_currency",
    description="Convert an amount of money from one currency to another.",
    parameters={
        "type": "object",
        "properties": {
            "amount": {"type": "number", "description": "The amount to convert"},
            "source": {"type": "string", "description": "ISO code of the source currency"},
            "target": {"type": "string", "description": "ISO code of the target currency"},
        },
        "required": ["amount", "source", "target"],
    },
)
_CITIES = ("Paris", "Lagos", "Lima", "Osaka", "Oslo", "Quito", "Perth", "Cairo")
_CURRENCIES = ("USD", "EUR", "JPY", "GBP", "INR", "BRL")


def function_call_task(rng: np.random.Generator) -> Task:
    """One request needing zero, one or two parallel calls among two offered functions."""
    kind = int(rng.integers(4))
    cities = [str(c) for c in rng.choice(_CITIES, size=2, replace=False)]
    src, dst = (str(c) for c in rng.choice(_CURRENCIES, size=2, replace=False))
    amount = int(rng.integers(1, 500))
    if kind == 0:
        calls, prompt = [ToolCall("get_weather", {"city": cities[0]})], f"What's the weather like in {cities[0]}?"
    elif kind == 1:
        calls = [ToolCall("get_weather", {"city": c, "unit": "fahrenheit"}) for c in cities]
        prompt = f"Tell me the temperature in {cities[0]} and in {cities[1]}, in Fahrenheit."
    elif kind == 2:
        calls = [ToolCall("convert_currency", {"amount": amount, "source": src, "target": dst})]
        prompt = f"How much is {amount} {src} in {dst}?"
    else:
        calls, prompt = [], "Write a two-line poem about the sea."
    expert = [format_hermes(calls)] if calls else ["The sea is wide and grey,\nit keeps the shore at bay."]
    return Task(prompt=prompt, answer=calls, expert=expert, tools=[WEATHER, CONVERT], id=f"fc-{kind}-{prompt[:40]}")


def arithmetic_env(**kwargs) -> MathEnv:
    """MathEnv over `arithmetic_task` problems."""
    return MathEnv(tasks=arithmetic_task, **kwargs)


def calculator_env(**kwargs) -> ToolEnv:
    """ToolEnv with the `calculator` tool over `calculator_task` questions (Hermes format)."""
    return ToolEnv(tools=[calculator], tasks=calculator_task, **kwargs)


def function_call_env(**kwargs) -> FunctionCallEnv:
    """FunctionCallEnv over `function_call_task` requests (Hermes format)."""
    return FunctionCallEnv(tasks=function_call_task, **kwargs)
