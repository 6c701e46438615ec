"""The small language `function_catalog` is written in: value samplers, parameters, functions.

A catalogue function (`Fn`) is a name, a one-line description, parameters (`req` / `opt`) and 2-4
request phrasings. Each parameter has a sampler that draws a value together with the words a user
would say for it (`draw(rng) -> Draw(value, surface, linked)`): `Int(1, 20)` may say 12 as "12",
"twelve" or "a dozen"; `Qty(1, 50, "km")` says "5 km", "5km" or "5 kilometers"; `Pct(1, 9)` says
"3.5%" and gives 0.035; `Date()` says "March 3rd, 2024" and gives "2024-03-03". A sampler also
knows its JSON Schema (`schema()`) and adds a format hint to the parameter's description where the
value's form is not obvious (`hint`).

Phrasings are templates: `{name}` is a parameter's surface (`{obj.field}` a field of a nested
object), and a `[...]` segment is kept only when every slot in it is stated, which is how optional
parameters are sometimes said and sometimes not. A `Qty(..., link="unit")` states a unit enum
parameter through the quantity's own words ("12 kilograms" -> weight=12, unit="kg").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

Rng = np.random.Generator


def pick(rng: Rng, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


@dataclass
class Draw:
    value: Any
    surface: str
    linked: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)  # sub-slot surfaces of a nested object


def fmt_num(v: float, dp: int = 6) -> str:
    text = f"{v:.{dp}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_BIG = {100: ("a hundred", "one hundred"), 1000: ("a thousand", "one thousand"), 500_000: ("half a million",),
        1_000_000: ("a million", "one million"), 250_000: ("a quarter of a million",), 1500: ("fifteen hundred",),
        1_500_000: ("1.5 million", "one and a half million"), 2_500_000: ("2.5 million",)}


def number_words(n: int) -> list[str]:
    """Spellings of `n` beyond digits: "seventeen", "two dozen", "half a million", "3 thousand"..."""
    out: list[str] = list(_BIG.get(n, ()))
    if 0 <= n < 20:
        out.append(_ONES[n])
    elif 20 <= n < 100:
        out.append(_TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10]))
    elif n < 1000 and n % 100 == 0:
        out.append(f"{_ONES[n // 100]} hundred")
    elif n % 1000 == 0 and 1000 < n < 100_000:
        k = n // 1000
        out += [f"{number_words(k)[-1]} thousand", f"{k} thousand"]
    elif n % 1_000_000 == 0 and n > 1_000_000:
        out.append(f"{n // 1_000_000} million")
    if n in (6, 12, 24, 36, 48):
        out.append({6: "half a dozen", 12: "a dozen", 24: "two dozen", 36: "three dozen", 48: "four dozen"}[n])
    return out


def int_surface(rng: Rng, n: int, words: float = 0.3) -> str:
    """`n` as digits (with thousands separators sometimes) or, with probability `words`, spelled out;
    `words=0` says it verbatim (years, ratings, codes)."""
    spelled = number_words(n) if n >= 0 else []
    if spelled and rng.random() < words:
        return pick(rng, spelled)
    if words and (abs(n) >= 10_000 or (abs(n) >= 1000 and rng.random() < 0.5)):
        return f"{n:,}"
    return str(n)


class Sampler:
    """Draws a value and its surface; `schema()` is the parameter's JSON Schema (less description)."""

    type = "string"
    hint = ""
    tuple_like = False  # an array BFCL would spell "tuple"

    def draw(self, rng: Rng) -> Draw:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        return {"type": self.type}

    def scalar(self) -> bool:
        """Whether several values of it read well as a list ("5, 7 and 9") in a parallel request."""
        return True


class Int(Sampler):
    type = "integer"

    def __init__(self, lo: int, hi: int, step: int = 1, words: float = 0.3):
        self.lo, self.hi, self.step, self.words = lo, hi, step, words

    def draw(self, rng: Rng) -> Draw:
        n = self.lo + self.step * int(rng.integers((self.hi - self.lo) // self.step + 1))
        return Draw(n, int_surface(rng, n, self.words))


class Num(Sampler):
    type = "number"

    def __init__(self, lo: float, hi: float, dp: int = 1, unit: str = ""):
        self.lo, self.hi, self.dp, self.unit = lo, hi, dp, unit

    def draw(self, rng: Rng) -> Draw:
        text = fmt_num(float(rng.uniform(self.lo, self.hi)), self.dp)
        return Draw(float(text), text + self.unit)


UNIT_WORDS: dict[str, tuple[str, ...]] = {
    "km": ("kilometers", "kilometres"), "m": ("meters", "metres"), "cm": ("centimeters",), "mm": ("millimeters",),
    "mi": ("miles",), "ft": ("feet",), "in": ("inches",), "kg": ("kilograms", "kilos"), "g": ("grams",),
    "lb": ("pounds", "lbs"), "oz": ("ounces",), "l": ("liters", "litres"), "ml": ("milliliters",), "gal": ("gallons",),
    "s": ("seconds", "sec"), "min": ("minutes", "mins"), "h": ("hours", "hrs"), "km/h": ("kilometers per hour", "kph"),
    "mph": ("miles per hour",), "m/s": ("meters per second",), "N": ("newtons",), "J": ("joules",), "W": ("watts",),
    "kW": ("kilowatts",), "kWh": ("kilowatt-hours",), "V": ("volts",), "A": ("amps", "amperes"), "ohm": ("ohms",),
    "Pa": ("pascals",), "K": ("kelvin",), "C": ("degrees Celsius", "°C"), "F": ("degrees Fahrenheit", "°F"),
    "mol": ("moles",), "Hz": ("hertz",), "ha": ("hectares",), "acre": ("acres",), "sqft": ("square feet", "sq ft"),
    "m2": ("square meters", "m²"), "cal": ("calories", "kcal"), "bpm": ("beats per minute", "bpm"), "days": ("days",),
    "years": ("years",), "months": ("months",), "weeks": ("weeks",), "GB": ("gigabytes",), "MB": ("megabytes",),
    "Mbps": ("megabits per second",), "AU": ("astronomical units",), "ly": ("light-years", "light years"),
    "t": ("tonnes", "metric tons"), "L/100km": ("liters per 100 km",), "steps": ("steps",), "people": ("people",),
    "servings": ("servings",), "pages": ("pages",), "g/mol": ("grams per mole",), "M": ("molar", "mol/L"),
}
_PLAIN_UNITS = {"days", "years", "months", "weeks", "steps", "people", "servings", "pages", "acre"}


def unit_surface(rng: Rng, number: str, unit: str) -> str:
    words = UNIT_WORDS.get(unit, ())
    if unit in _PLAIN_UNITS or (words and rng.random() < 0.5):
        return f"{number} {pick(rng, words) if words else unit}"
    if unit in ("C", "F"):
        return f"{number}°{unit}"
    return f"{number}{unit}" if rng.random() < 0.4 else f"{number} {unit}"


class Qty(Sampler):
    """A number said with its unit: "5 km", "5km", "5 kilometers". With `link`, the unit is one of
    `unit` (a tuple) and is also the value of the enum parameter named `link`."""

    def __init__(self, lo: float, hi: float, unit: str | tuple[str, ...], dp: int = 0, link: str | None = None, words: float = 0.2):
        self.lo, self.hi, self.unit, self.dp, self.link, self.words = lo, hi, unit, dp, link, words
        self.type = "integer" if dp == 0 else "number"

    def draw(self, rng: Rng) -> Draw:
        unit = self.unit if isinstance(self.unit, str) else pick(rng, self.unit)
        if self.dp == 0:
            value: float = int(rng.integers(int(self.lo), int(self.hi) + 1))
            text = int_surface(rng, int(value), self.words)
        else:
            text = fmt_num(float(rng.uniform(self.lo, self.hi)), self.dp)
            value = float(text)
        return Draw(value, unit_surface(rng, text, unit), {self.link: unit} if self.link else {})

    def scalar(self) -> bool:
        return self.link is None


class Money(Sampler):
    type = "number"

    def __init__(self, lo: int, hi: int, step: int = 1, cents: bool = False):
        self.lo, self.hi, self.step, self.cents = lo, hi, step, cents

    def draw(self, rng: Rng) -> Draw:
        n = self.lo + self.step * int(rng.integers((self.hi - self.lo) // self.step + 1))
        if self.cents:
            text = f"{n + int(rng.integers(100)) / 100:,.2f}"
            value = float(text.replace(",", ""))
            return Draw(value, pick(rng, (f"${text}", f"{text} dollars", f"${text}")))
        spelled = [w for w in number_words(n) if " " in w or w.endswith("million")]
        forms = [f"${n:,}", f"{n:,} dollars", f"${n}"] + ([f"${n // 1000}k"] if n % 1000 == 0 and n >= 1000 else [])
        forms += [f"{w} dollars" for w in spelled[:1]]
        return Draw(n, pick(rng, forms))


class Pct(Sampler):
    """A percentage said as "3.5%" or "3.5 percent"; the value is 0.035 (`frac`) or 3.5."""

    type = "number"

    def __init__(self, lo: float, hi: float, dp: int = 1, frac: bool = True):
        self.lo, self.hi, self.dp, self.frac = lo, hi, dp, frac
        self.hint = " As a decimal fraction, e.g. 0.05 for 5%." if frac else " In percent, e.g. 5 for 5%."

    def draw(self, rng: Rng) -> Draw:
        text = fmt_num(float(rng.uniform(self.lo, self.hi)), self.dp)
        value = round(float(text) / 100, self.dp + 2) if self.frac else float(text)
        return Draw(value, text + pick(rng, ("%", "%", " percent")))


_MONTHS = ("January February March April May June July August September October November December").split()


def ordinal(d: int) -> str:
    return f"{d}{'th' if 11 <= d % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


class Date(Sampler):
    hint = " Format YYYY-MM-DD."

    def __init__(self, lo: int = 2024, hi: int = 2026):
        self.lo, self.hi = lo, hi

    def draw(self, rng: Rng) -> Draw:
        y, m, d = int(rng.integers(self.lo, self.hi + 1)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        name = _MONTHS[m - 1]
        forms = (f"{name} {ordinal(d)}, {y}", f"{d} {name} {y}", f"{name[:3]} {d}, {y}", f"{y}-{m:02d}-{d:02d}",
                 f"the {ordinal(d)} of {name} {y}", f"{name} {d}, {y}")
        return Draw(f"{y}-{m:02d}-{d:02d}", pick(rng, forms))


class Time(Sampler):
    hint = " 24-hour time, HH:MM."

    def draw(self, rng: Rng) -> Draw:
        h, m = int(rng.integers(6, 23)), int(pick(rng, (0, 0, 15, 30, 45)))
        twelve = f"{(h - 1) % 12 + 1}{':%02d' % m if m else ''}"
        ampm = "am" if h < 12 else "pm"
        forms = [f"{twelve} {ampm.upper()}", f"{twelve}{ampm}", f"{h:02d}:{m:02d}"] + (["noon"] if (h, m) == (12, 0) else [])
        return Draw(f"{h:02d}:{m:02d}", pick(rng, forms))


class Pick(Sampler):
    """A string from a pool, said as is (sometimes in quotes when `quote`)."""

    def __init__(self, pool: Sequence[str], quote: bool = False):
        self.pool, self.quote = tuple(pool), quote

    def draw(self, rng: Rng) -> Draw:
        value = pick(rng, self.pool)
        return Draw(value, f"'{value}'" if self.quote and rng.random() < 0.5 else value)


class Enum(Sampler):
    """One of `options`; `say` maps an option to the words that may name it in a request."""

    def __init__(self, *options: str, say: dict[str, Sequence[str]] | None = None):
        self.options, self.say = options, say or {}

    def draw(self, rng: Rng) -> Draw:
        value = pick(rng, self.options)
        return Draw(value, pick(rng, tuple(self.say.get(value, (value,)))))

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.options)}


class Bool(Sampler):
    """True or False, said as the `yes` or the `no` phrase."""

    type = "boolean"

    def __init__(self, yes: str, no: str, p: float = 0.6):
        self.yes, self.no, self.p = yes, no, p

    def draw(self, rng: Rng) -> Draw:
        value = bool(rng.random() < self.p)
        return Draw(value, self.yes if value else self.no)

    def scalar(self) -> bool:
        return False


def join_words(rng: Rng, items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    if rng.random() < 0.3:
        return ", ".join(items)
    return ", ".join(items[:-1]) + (pick(rng, (" and ", ", and ")) if len(items) > 2 else " and ") + items[-1]


class Strs(Sampler):
    """A list of 2-4 distinct strings from a pool, said as "a, b and c"."""

    type = "array"

    def __init__(self, pool: Sequence[str], k: tuple[int, int] = (2, 4)):
        self.pool, self.k = tuple(pool), k

    def draw(self, rng: Rng) -> Draw:
        k = int(rng.integers(self.k[0], self.k[1] + 1))
        items = [self.pool[int(i)] for i in rng.choice(len(self.pool), size=min(k, len(self.pool)), replace=False)]
        return Draw(items, join_words(rng, items))

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}}

    def scalar(self) -> bool:
        return False


class Nums(Sampler):
    """A list of numbers, said as "[3, 5, 8]", "3, 5, 8" or "3, 5 and 8"."""

    type = "array"

    def __init__(self, lo: float, hi: float, k: tuple[int, int] = (3, 6), dp: int = 0, tuple_like: bool = False):
        self.lo, self.hi, self.k, self.dp, self.tuple_like = lo, hi, k, dp, tuple_like

    def draw(self, rng: Rng) -> Draw:
        k = int(rng.integers(self.k[0], self.k[1] + 1))
        if self.dp == 0:
            values: list = [int(v) for v in rng.integers(int(self.lo), int(self.hi) + 1, size=k)]
        else:
            values = [float(fmt_num(float(v), self.dp)) for v in rng.uniform(self.lo, self.hi, size=k)]
        texts = [fmt_num(v, self.dp) if self.dp else str(v) for v in values]
        surface = f"({', '.join(texts)})" if self.tuple_like else pick(rng, (f"[{', '.join(texts)}]", join_words(rng, texts)))
        return Draw(values, surface)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer" if self.dp == 0 else "number"}}

    def scalar(self) -> bool:
        return False


class Coord(Sampler):
    """A (latitude, longitude) pair."""

    type = "array"
    tuple_like = True
    hint = " As [latitude, longitude]."

    def draw(self, rng: Rng) -> Draw:
        lat, lon = fmt_num(float(rng.uniform(-60, 70)), 2), fmt_num(float(rng.uniform(-170, 170)), 2)
        return Draw([float(lat), float(lon)], pick(rng, (f"({lat}, {lon})", f"latitude {lat}, longitude {lon}", f"{lat}, {lon}")))

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "number"}}

    def scalar(self) -> bool:
        return False


class Obj(Sampler):
    """A nested object whose fields are all required parameters; phrasings say `{name.field}`."""

    type = "object"

    def __init__(self, *fields: Param):
        self.fields = fields

    def draw(self, rng: Rng) -> Draw:
        draws = {f.name: f.sampler.draw(rng) for f in self.fields}
        return Draw({k: d.value for k, d in draws.items()}, "", parts={k: d.surface for k, d in draws.items()})

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {f.name: f.schema() for f in self.fields}, "required": [f.name for f in self.fields]}

    def scalar(self) -> bool:
        return False


@dataclass
class Param:
    name: str
    sampler: Sampler
    description: str
    required: bool = True
    default: Any = None

    def schema(self) -> dict[str, Any]:
        return {**self.sampler.schema(), "description": self.description + self.sampler.hint}


def req(name: str, sampler: Sampler, description: str) -> Param:
    return Param(name, sampler, description)


def opt(name: str, default: Any, sampler: Sampler, description: str) -> Param:
    return Param(name, sampler, description, required=False, default=default)


SLOT = re.compile(r"\{([\w.]+)\}")
SEGMENT = re.compile(r"\[([^\[\]]*)\]")


@dataclass
class Fn:
    name: str
    description: str
    params: list[Param]
    phrasings: tuple[str, ...]
    domain: str = ""

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if not p.required}

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {p.name: p.schema() for p in self.params},
                "required": [p.name for p in self.params if p.required]}

    def linked(self) -> set[str]:
        return {p.sampler.link for p in self.params if isinstance(p.sampler, Qty) and p.sampler.link}

    def check(self) -> None:
        """Every required parameter is said in every phrasing (or linked); slots name parameters."""
        names = {p.name for p in self.params}
        if not 2 <= len(self.phrasings) <= 4 or not self.description.endswith("."):
            raise ValueError(f"{self.name}: needs 2-4 phrasings and a one-sentence description")
        for text in self.phrasings:
            slots = {s.split(".")[0] for s in SLOT.findall(text)}
            missing = {p.name for p in self.params if p.required} - slots - self.linked()
            if missing or slots - names:
                raise ValueError(f"{self.name}: phrasing {text!r} misses {missing} or names unknown {slots - names}")
            if {s.split(".")[0] for s in SLOT.findall(SEGMENT.sub("", text))} & {p.name for p in self.params if not p.required}:
                raise ValueError(f"{self.name}: optional parameters must sit in [...] segments: {text!r}")


def render(template: str, surfaces: dict[str, str]) -> str:
    """Fill the slots; keep a `[...]` segment only if all its slots have surfaces."""
    def segment(m: re.Match) -> str:
        return m.group(1) if all(s in surfaces for s in SLOT.findall(m.group(1))) else ""

    text = SLOT.sub(lambda m: surfaces[m.group(1)], SEGMENT.sub(segment, template))
    text = _AN.sub(lambda m: m.group(1) + "n " + m.group(2), text)
    return text[:1].upper() + text[1:]


_AN = re.compile(r"\b([Aa]) (?!one\b|one-|Euro)([AEIOaeio]\w)")
