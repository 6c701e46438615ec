"""The converter world: lengths, temperatures, angles and currencies, with saved rate alerts.

This is where values come in the forms people write: "6 cm", "300K", "2 pi radians", "72°F". The
tools take a plain number and a unit enum, so the agent separates the unit from the number and
evaluates expressions itself. State: the day's exchange rates and the user's rate alerts.
Failures: an unknown currency code, a temperature below absolute zero, a duplicate alert.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, choose, say, world_tool
from chord_env.types import ToolCall

Length = Literal["mm", "cm", "m", "km", "in", "ft", "mi"]
_METRES = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048, "mi": 1609.344}
_LENGTH_WORDS = {"mm": "millimetres", "cm": "cm", "m": "metres", "km": "km", "in": "inches", "ft": "feet", "mi": "miles"}
_RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.0, "INR": 83.0, "CHF": 0.9}


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _plain(value: float) -> str:
    return f"{value:.7f}".rstrip("0").rstrip(".")


class Converter(World):
    name = "converter"

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict:
        rates = {k: round(v * float(rng.uniform(0.95, 1.05)), 4) if k != "USD" else 1.0 for k, v in _RATES.items()}
        return {"usd_rates": rates, "alerts": []}

    @world_tool
    def convert_length(self, value: float, from_unit: Length, to_unit: Length) -> dict:
        """Convert a length between units.

        Args:
            value: The number to convert.
            from_unit: Its unit.
            to_unit: The unit wanted.
        """
        return {"value": _round(value * _METRES[from_unit] / _METRES[to_unit]), "unit": to_unit}

    @world_tool
    def convert_temperature(self, value: float, from_scale: Literal["C", "F", "K"], to_scale: Literal["C", "F", "K"]) -> dict:
        """Convert a temperature between Celsius, Fahrenheit and Kelvin.

        Args:
            value: The temperature.
            from_scale: Its scale: C, F or K.
            to_scale: The scale wanted.
        """
        kelvin = {"C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15, "K": value}[from_scale]
        if kelvin < 0:
            raise WorldError(f"{value} {from_scale} is below absolute zero")
        out = {"C": kelvin - 273.15, "F": (kelvin - 273.15) * 9 / 5 + 32, "K": kelvin}[to_scale]
        return {"value": round(out, 2), "scale": to_scale}

    @world_tool
    def convert_angle(self, value: float, from_unit: Literal["degrees", "radians"], to_unit: Literal["degrees", "radians"]) -> dict:
        """Convert an angle between degrees and radians.

        Args:
            value: The angle as a plain number (evaluate expressions like 2*pi first).
            from_unit: Its unit.
            to_unit: The unit wanted.
        """
        radians = math.radians(value) if from_unit == "degrees" else value
        return {"value": round(math.degrees(radians) if to_unit == "degrees" else radians, 4), "unit": to_unit}

    def _rate(self, code: str) -> float:
        if code not in self.state["usd_rates"]:
            raise NotFound(f"unknown currency {code!r}; known: {', '.join(self.state['usd_rates'])}")
        return self.state["usd_rates"][code]

    @world_tool
    def convert_currency(self, amount: float, from_currency: str, to_currency: str) -> dict:
        """Convert money at today's rate.

        Args:
            amount: The amount.
            from_currency: ISO code, e.g. EUR.
            to_currency: ISO code, e.g. JPY.
        """
        return {"amount": round(amount / self._rate(from_currency) * self._rate(to_currency), 2), "currency": to_currency}

    @world_tool
    def get_exchange_rate(self, from_currency: str, to_currency: str) -> dict:
        """Today's rate: how much of `to_currency` one unit of `from_currency` buys.

        Args:
            from_currency: ISO code, e.g. GBP.
            to_currency: ISO code, e.g. USD.
        """
        return {"pair": f"{from_currency}/{to_currency}", "rate": round(self._rate(to_currency) / self._rate(from_currency), 4)}

    @world_tool
    def set_rate_alert(self, from_currency: str, to_currency: str, threshold: float) -> dict:
        """Be told when one unit of a currency is worth at least `threshold` of another.

        Args:
            from_currency: ISO code of the currency watched.
            to_currency: ISO code it is priced in.
            threshold: The rate to alert at.
        """
        for code in (from_currency, to_currency):
            self._rate(code)
        alert = {"pair": f"{from_currency}/{to_currency}", "threshold": threshold}
        if alert in self.state["alerts"]:
            raise WorldError(f"an alert for {alert['pair']} at {threshold} already exists")
        self.state["alerts"].append(alert)
        return {"status": "alert set", **alert}


def length(rng: np.random.Generator, state: dict) -> Intent:
    src, dst = choose(rng, sorted(_METRES), k=2)
    value = float(choose(rng, (1, 2.5, 6, 12, 40, 100, 250)))
    spoken = choose(rng, (f"{value:g} {src}", f"{value:g}{src}", f"{value:g} {_LENGTH_WORDS[src]}"))
    request, wording = say(rng, "converter.length", (
        "How many {dst} is {v}?", "Convert {v} to {dst}.", "What's {v} in {dst}?",
    ), v=spoken, dst=_LENGTH_WORDS[dst])
    out = Converter(state).convert_length(value, src, dst)["value"]
    return Intent(request, [[ToolCall("convert_length", {"value": value, "from_unit": src, "to_unit": dst})]],
                  f"{value:g} {src} is {_plain(out)} {dst}.", [out], {f"len:{src}{dst}"}, wording)


def temperature(rng: np.random.Generator, state: dict) -> Intent:
    src, dst = choose(rng, ("C", "F", "K"), k=2)
    value = float({"C": choose(rng, (-10, 0, 21, 37, 100)), "F": choose(rng, (32, 72, 98.6, 212)),
                   "K": choose(rng, (250, 273.15, 300, 310))}[src])
    marks = {"C": ("°C", " degrees Celsius", "C"), "F": ("°F", " Fahrenheit", "F"), "K": ("K", " kelvin", " K")}
    spoken = f"{value:g}{choose(rng, marks[src])}"
    names = {"C": "Celsius", "F": "Fahrenheit", "K": "Kelvin"}
    request, wording = say(rng, "converter.temperature", (
        "What is {v} in {dst}?", "Convert {v} to {dst}, please.", "{v} - how much is that in {dst}?",
    ), v=spoken, dst=names[dst])
    out = Converter(state).convert_temperature(value, src, dst)["value"]
    return Intent(request, [[ToolCall("convert_temperature", {"value": value, "from_scale": src, "to_scale": dst})]],
                  f"{spoken} is {out:g} {names[dst]}.", [out], {f"temp:{src}{dst}"}, wording)


def angle(rng: np.random.Generator, state: dict) -> Intent:
    k, text = choose(rng, ((2, "2 pi"), (0.5, "pi/2"), (1, "pi"), (0.25, "a quarter pi"), (1.5, "1.5π"), (3, "3*pi")))
    request, wording = say(rng, "converter.angle", (
        "How many degrees is {t} radians?", "Convert {t} rad to degrees.", "What's an angle of {t} radians in degrees?",
    ), t=text)
    degrees = round(k * 180.0, 4)
    return Intent(request, [[ToolCall("convert_angle", {"value": k * math.pi, "from_unit": "radians", "to_unit": "degrees"})]],
                  f"{text} radians is {degrees:g} degrees.", [degrees], {f"angle:{text}"}, wording)


def currency(rng: np.random.Generator, state: dict) -> Intent:
    src, dst = choose(rng, sorted(_RATES), k=2)
    amount = float(choose(rng, (20, 75, 150, 1200, 5000)))
    spoken = choose(rng, (f"{amount:g} {src}", f"{src} {amount:,.0f}", f"{amount / 1000:g}k {src}" if amount >= 1000 else f"{amount:g}{src}"))
    request, wording = say(rng, "converter.currency", (
        "How much is {v} in {dst}?", "Convert {v} to {dst}.", "I have {v}; what's that in {dst}?",
    ), v=spoken, dst=dst)
    out = Converter(state).convert_currency(amount, src, dst)["amount"]
    return Intent(request, [[ToolCall("convert_currency", {"amount": amount, "from_currency": src, "to_currency": dst})]],
                  f"{amount:g} {src} is about {out:,.2f} {dst} at today's rate.", [out], {f"cur:{src}{dst}"}, wording)


def alert(rng: np.random.Generator, state: dict) -> Intent:
    src, dst = choose(rng, [c for c in sorted(_RATES) if c != "JPY"], k=2)
    threshold = round(state["usd_rates"][dst] / state["usd_rates"][src] * 1.05, 2)
    request, wording = say(rng, "converter.alert", (
        "Alert me when 1 {s} is worth {t} {d} or more.", "Set a rate alert for {s}/{d} at {t}.",
        "Let me know once {s} hits {t} against the {d}.",
    ), s=src, d=dst, t=threshold)
    return Intent(request, [[ToolCall("set_rate_alert", {"from_currency": src, "to_currency": dst, "threshold": threshold})]],
                  f"Alert set: you'll hear when {src}/{dst} reaches {threshold}.", [threshold], {"alerts"}, wording,
                  f"Set a rate alert for {src}/{dst}.", "At what rate should the alert trigger?", f"At {threshold}.")


def alert_above(rng: np.random.Generator, state: dict) -> Intent:
    src, dst = choose(rng, sorted(_RATES), k=2)
    percent = int(choose(rng, (2, 5, 10)))
    rate = Converter(state).get_exchange_rate(src, dst)["rate"]
    threshold = round(rate * (1 + percent / 100), 4)
    request, wording = say(rng, "converter.alert_above", (
        "Set an alert for when {s}/{d} is {p}% above today's rate.",
        "Watch {s} against {d} and tell me when it gains {p} percent on today's rate.",
    ), s=src, d=dst, p=percent)
    steps = [[ToolCall("get_exchange_rate", {"from_currency": src, "to_currency": dst})],
             [ToolCall("set_rate_alert", {"from_currency": src, "to_currency": dst, "threshold": threshold})]]
    return Intent(request, steps, f"Today's {src}/{dst} rate is {rate}; the alert fires at {threshold}.", [threshold],
                  {"alerts"}, wording)


Converter.intents = (length, temperature, angle, currency, alert, alert_above)
Converter.off_topic = (
    ("What's the population of Brazil?", "I don't have a source for population figures; my tools convert lengths, temperatures, angles and currencies."),
    ("Buy 100 euros for me.", "I can convert amounts and set rate alerts, but I can't buy or exchange currency."),
)
