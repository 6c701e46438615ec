"""Values in the forms people write them: dates, times, durations, money, lists.

Each `spoken_*` function draws one human spelling of a canonical value ("2026-03-05" -> "March 5th",
"5/3", "Thursday"); the tools take the canonical form, so the agent must convert. These are the
spots where a model trained on tidy synthetic data goes wrong (docs/platform.md, "SmolLM2, offline").
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

import numpy as np

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def spoken_date(rng: np.random.Generator, iso: str, today: str | None = None) -> str:
    """A date as a person writes it; relative forms ("tomorrow", "on Friday") need `today`."""
    day = dt.date.fromisoformat(iso)
    forms = [
        f"{_MONTHS[day.month - 1]} {_ordinal(day.day)}",
        f"{day.day} {_MONTHS[day.month - 1]}",
        f"{_MONTHS[day.month - 1][:3]} {day.day}",
        iso,
        f"{day.day} {_MONTHS[day.month - 1]} {day.year}",
    ]
    if today is not None:
        delta = (day - dt.date.fromisoformat(today)).days
        if delta == 1:
            forms.append("tomorrow")
        elif 1 < delta < 7:
            forms.append(f"this {day.strftime('%A')}")
    return forms[int(rng.integers(len(forms)))]


def spoken_time(rng: np.random.Generator, hhmm: str) -> str:
    """A clock time ("15:30") as "3:30pm", "15:30", "3:30 in the afternoon" or "half past 3 pm"."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    h12 = hour % 12 or 12
    ampm = "am" if hour < 12 else "pm"
    part = "in the morning" if hour < 12 else ("in the afternoon" if hour < 18 else "in the evening")
    forms = [hhmm, f"{h12}:{minute:02d} {part}"]
    forms.append(f"{h12}{ampm}" if minute == 0 else f"{h12}:{minute:02d}{ampm}")
    if minute == 30:
        forms.append(f"half past {h12} {ampm}")
    if minute == 0:
        forms.append(f"{h12} o'clock {part}")
    return forms[int(rng.integers(len(forms)))]


def spoken_minutes(rng: np.random.Generator, minutes: int) -> str:
    """A duration as "90 minutes", "1.5 hours", "an hour and a half", "1h30"."""
    hours, rest = divmod(minutes, 60)
    forms = [f"{minutes} minutes", f"{minutes} min"]
    if rest == 0:
        forms += [f"{hours} hour{'s' if hours > 1 else ''}", f"{hours}h"]
        if hours == 1:
            forms.append("an hour")
    elif rest == 30:
        forms += [f"{hours}.5 hours", f"{hours}h30"]
        if hours == 1:
            forms.append("an hour and a half")
    if minutes == 30:
        forms.append("half an hour")
    if minutes == 45:
        forms.append("three quarters of an hour")
    return forms[int(rng.integers(len(forms)))]


def spoken_money(rng: np.random.Generator, amount: float, symbol: str = "$", code: str = "USD") -> str:
    """An amount as "$1,250", "1250 dollars", "$1.25k", "USD 1,250.00"."""
    whole = float(amount).is_integer()
    plain = f"{amount:,.0f}" if whole else f"{amount:,.2f}"
    forms = [f"{symbol}{plain}", f"{code} {amount:,.2f}", f"{plain.replace(',', '')} {code}"]
    if whole and amount >= 1000 and amount % 10 == 0:
        forms.append(f"{symbol}{amount / 1000:g}k")
    return forms[int(rng.integers(len(forms)))]


def spoken_list(rng: np.random.Generator, items: Sequence[str]) -> str:
    """Items as "a, b and c", "a, b, and c" or "a / b / c"."""
    items = list(items)
    if len(items) == 1:
        return items[0]
    forms = [f"{', '.join(items[:-1])} and {items[-1]}", f"{', '.join(items[:-1])}, and {items[-1]}", " / ".join(items)]
    return forms[int(rng.integers(len(forms)))]


def money(amount: float) -> str:
    """The canonical way the worlds' answers state money: "1,250.00"."""
    return f"{amount:,.2f}"
