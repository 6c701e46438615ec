"""The calendar world: one person's events over a fortnight; create, list, cancel, move, find a slot.

Dates are ISO (`YYYY-MM-DD`), times 24-hour `HH:MM`; the user speaks in "March 5th", "3pm",
"an hour and a half", so the agent converts. Failures: malformed date or time, an unknown event
id, a new event overlapping another.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np

from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, choose, say, world_tool
from chord_env.tools.worlds.phrases import spoken_date, spoken_minutes, spoken_time
from chord_env.types import ToolCall

_TITLES = ("Dentist", "Team sync", "Lunch with Priya", "Yoga", "Budget review", "Parent-teacher meeting",
           "Call with landlord", "Haircut", "Design critique", "Piano lesson", "Car service", "Book club")
_PLACES = ("Room 4B", "the cafe on Elm Street", "City Clinic", "online", "the community hall")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise WorldError(f"date must be YYYY-MM-DD, got {value!r}") from None


def _minutes(value: str) -> int:
    match = _TIME.match(value)
    if not match:
        raise WorldError(f"time must be 24-hour HH:MM, got {value!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class Calendar(World):
    name = "calendar"
    context = "Today is {today_long}."

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict:
        today = dt.date(2026, int(rng.integers(1, 12)), int(rng.integers(1, 18)))
        events = {}
        for i, title in enumerate(choose(rng, _TITLES, k=6)):
            day = today + dt.timedelta(days=int(rng.integers(0, 10)))
            start = int(rng.integers(9, 17)) * 60
            clash = any(e["date"] == day.isoformat() and abs(_minutes(e["start"]) - start) < 60 for e in events.values())
            if not clash:
                events[f"ev-{101 + i}"] = {"title": title, "date": day.isoformat(), "start": _hhmm(start),
                                           "duration_minutes": 60, "location": None}
        return {"today": today.isoformat(), "today_long": today.strftime("%A, %B %d, %Y"), "events": events, "next_id": 201}

    def _busy(self, date: str, ignore: str | None = None) -> list[tuple[int, int]]:
        return sorted((_minutes(e["start"]), _minutes(e["start"]) + e["duration_minutes"])
                      for k, e in self.state["events"].items() if e["date"] == date and k != ignore)

    def _check_free(self, date: str, start: int, duration: int, ignore: str | None = None) -> None:
        for lo, hi in self._busy(date, ignore):
            if start < hi and lo < start + duration:
                raise WorldError(f"that overlaps another event on {date} from {_hhmm(lo)} to {_hhmm(hi)}")

    def _event(self, event_id: str) -> dict:
        if event_id not in self.state["events"]:
            raise NotFound(f"no event with id {event_id!r}")
        return self.state["events"][event_id]

    @world_tool
    def list_events(self, date: str) -> list[dict]:
        """List the events on one day, earliest first.

        Args:
            date: The day, as YYYY-MM-DD.
        """
        _date(date)
        found = [{"event_id": k, **e} for k, e in self.state["events"].items() if e["date"] == date]
        return sorted(found, key=lambda e: e["start"])

    @world_tool
    def create_event(self, title: str, date: str, start: str, duration_minutes: int = 60, location: str | None = None) -> dict:
        """Add an event to the calendar.

        Args:
            title: What the event is.
            date: The day, as YYYY-MM-DD.
            start: Start time, 24-hour HH:MM.
            duration_minutes: Length in minutes.
            location: Where it takes place, if known.
        """
        _date(date)
        begin = _minutes(start)
        if not 5 <= duration_minutes <= 12 * 60:
            raise WorldError(f"duration_minutes must be between 5 and 720, got {duration_minutes}")
        self._check_free(date, begin, duration_minutes)
        event_id = f"ev-{self.state['next_id']}"
        self.state["next_id"] += 1
        self.state["events"][event_id] = {"title": title, "date": date, "start": start,
                                          "duration_minutes": duration_minutes, "location": location}
        return {"event_id": event_id, "status": "created"}

    @world_tool
    def cancel_event(self, event_id: str) -> dict:
        """Delete an event.

        Args:
            event_id: The event's id, as returned by list_events.
        """
        event = self._event(event_id)
        del self.state["events"][event_id]
        return {"event_id": event_id, "status": "cancelled", "title": event["title"]}

    @world_tool
    def move_event(self, event_id: str, date: str, start: str) -> dict:
        """Move an event to another day and/or time, keeping its length.

        Args:
            event_id: The event's id, as returned by list_events.
            date: The new day, as YYYY-MM-DD.
            start: The new start time, 24-hour HH:MM.
        """
        event = self._event(event_id)
        _date(date)
        self._check_free(date, _minutes(start), event["duration_minutes"], ignore=event_id)
        event.update(date=date, start=start)
        return {"event_id": event_id, "status": "moved", "date": date, "start": start}

    @world_tool
    def find_free_slot(self, date: str, duration_minutes: int, earliest: str = "09:00", latest: str = "18:00") -> dict:
        """Find the earliest free slot of a given length on a day.

        Args:
            date: The day, as YYYY-MM-DD.
            duration_minutes: How long the slot must be, in minutes.
            earliest: Do not start before this time (HH:MM).
            latest: Finish by this time (HH:MM).
        """
        _date(date)
        start, end = _minutes(earliest), _minutes(latest)
        for lo, hi in self._busy(date):
            if start + duration_minutes <= lo:
                break
            start = max(start, hi)
        if start + duration_minutes > end:
            raise WorldError(f"no free {duration_minutes}-minute slot on {date} between {earliest} and {latest}")
        return {"date": date, "start": _hhmm(start), "end": _hhmm(start + duration_minutes)}


def _some_event(rng: np.random.Generator, state: dict) -> tuple[str, dict]:
    event_id = choose(rng, sorted(state["events"]))
    return event_id, state["events"][event_id]


def _new_day(rng: np.random.Generator, state: dict) -> str:
    return (dt.date.fromisoformat(state["today"]) + dt.timedelta(days=int(rng.integers(1, 12)))).isoformat()


def create(rng: np.random.Generator, state: dict) -> Intent:
    title = choose(rng, [t for t in _TITLES if t not in {e["title"] for e in state["events"].values()}])
    date = _new_day(rng, state)
    duration = int(choose(rng, (30, 45, 60, 90, 120)))
    start = Calendar(state).find_free_slot(date, duration, "09:00", "17:00")["start"]
    args = {"title": title, "date": date, "start": start, "duration_minutes": duration}
    extra = ""
    if rng.random() < 0.5:
        args["location"] = choose(rng, _PLACES)
        extra = f" at {args['location']}"
    when, length = spoken_date(rng, date, state["today"]), spoken_minutes(rng, duration)
    at = spoken_time(rng, start)
    request, wording = say(rng, "calendar.create", (
        "Put \"{title}\" on my calendar for {when} at {at}, {length}{extra}.",
        "Can you book {length} for {title} on {when}, starting {at}{extra}?",
        "Add an event called {title} on {when} at {at}{extra}; it takes {length}.",
        "Schedule {title}{extra} for {when}, {at}, lasting {length}.",
    ), title=title, when=when, at=at, length=length, extra=extra)
    vague, _ = say(rng, "calendar.create.vague", (
        "Put \"{title}\" on my calendar for {when}, {length}{extra}.",
        "Add {title} on {when}{extra}; it takes {length}.",
    ), title=title, when=when, length=length, extra=extra)
    answer = f"Done: \"{title}\" is on your calendar for {date} at {start} ({duration} minutes)."
    return Intent(request, [[ToolCall("create_event", args)]], answer, [title], {f"day:{date}"}, wording,
                  vague, "What time should it start?", f"Let's say {at}.")


def list_day(rng: np.random.Generator, state: dict) -> Intent:
    _, event = _some_event(rng, state)
    date = event["date"]
    events = Calendar(state).list_events(date)
    when = spoken_date(rng, date, state["today"])
    request, wording = say(rng, "calendar.list", (
        "What's on my calendar {when}?", "Do I have anything scheduled for {when}?",
        "List my appointments for {when}, please.", "What does {when} look like for me?",
    ), when=when)
    listing = "; ".join(f"{e['start']} {e['title']}" for e in events)
    answer = f"On {date} you have: {listing}."
    return Intent(request, [[ToolCall("list_events", {"date": date})]], answer, [e["title"] for e in events],
                  {f"day:{date}"}, wording)


def cancel(rng: np.random.Generator, state: dict) -> Intent:
    event_id, event = _some_event(rng, state)
    when = spoken_date(rng, event["date"], state["today"])
    request, wording = say(rng, "calendar.cancel", (
        "Cancel my {title} on {when}.", "I can't make {title} on {when} any more, please remove it.",
        "Please delete the {title} event from {when}.",
    ), title=event["title"], when=when)
    steps = [[ToolCall("list_events", {"date": event["date"]})], [ToolCall("cancel_event", {"event_id": event_id})]]
    answer = f"I've cancelled {event['title']} on {event['date']}."
    return Intent(request, steps, answer, [event["title"]], {f"day:{event['date']}"}, wording)


def move(rng: np.random.Generator, state: dict) -> Intent:
    event_id, event = _some_event(rng, state)
    date = _new_day(rng, state)
    start = Calendar(state).find_free_slot(date, event["duration_minutes"], "10:00", "17:00")["start"]
    old, new, at = spoken_date(rng, event["date"], state["today"]), spoken_date(rng, date, state["today"]), spoken_time(rng, start)
    request, wording = say(rng, "calendar.move", (
        "Move my {title} from {old} to {new} at {at}.", "Could you push {title} ({old}) to {new}, {at}?",
        "Reschedule the {title} on {old} for {new} at {at}.",
    ), title=event["title"], old=old, new=new, at=at)
    steps = [[ToolCall("list_events", {"date": event["date"]})],
             [ToolCall("move_event", {"event_id": event_id, "date": date, "start": start})]]
    answer = f"{event['title']} now starts at {start} on {date}."
    return Intent(request, steps, answer, [start], {f"day:{event['date']}", f"day:{date}"}, wording)


def free_slot(rng: np.random.Generator, state: dict) -> Intent:
    date = _new_day(rng, state)
    duration = int(choose(rng, (30, 60, 90)))
    slot = Calendar(state).find_free_slot(date, duration)
    when, length = spoken_date(rng, date, state["today"]), spoken_minutes(rng, duration)
    request, wording = say(rng, "calendar.free", (
        "When am I free for {length} on {when}?", "Find me a {length} gap on {when}.",
        "Is there room for {length} on {when}? Give me the earliest time.",
    ), length=length, when=when)
    answer = f"The earliest free {duration}-minute slot on {date} starts at {slot['start']} (until {slot['end']})."
    return Intent(request, [[ToolCall("find_free_slot", {"date": date, "duration_minutes": duration})]], answer,
                  [slot["start"]], {f"day:{date}"}, wording)


Calendar.intents = (create, list_day, cancel, move, free_slot)
Calendar.off_topic = (
    ("What's the weather going to be like tomorrow?", "I can only work with your calendar here; I have no weather service, so I can't tell you the forecast."),
    ("Send an invite for the budget review to Sam.", "I can manage events on your own calendar, but I have no way to send invitations to other people."),
    ("Remind me by text 10 minutes before my dentist appointment.", "I can't send text reminders: my tools only list, create, move and cancel calendar events."),
)
