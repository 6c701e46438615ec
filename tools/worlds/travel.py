"""The travel world: flights between a few cities on given days, bookings and seat upgrades.

Failures: no such flight or booking, too few seats left, a malformed date.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import numpy as np

from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, choose, say, world_tool
from chord_env.tools.worlds.phrases import money, spoken_date
from chord_env.types import ToolCall

_CITIES = ("Lisbon", "Nairobi", "Seoul", "Denver", "Auckland", "Montreal", "Istanbul", "Lima")
Cabin = Literal["economy", "premium", "business"]
_CABIN_PRICE = {"economy": 1.0, "premium": 1.6, "business": 3.0}


class Travel(World):
    name = "travel"
    context = "Today is {today}."

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict:
        today = dt.date(2026, int(rng.integers(1, 12)), int(rng.integers(1, 20)))
        flights = {}
        for i in range(8):
            origin, destination = choose(rng, _CITIES, k=2)
            day = (today + dt.timedelta(days=int(rng.integers(2, 9)))).isoformat()
            flights[f"FL{410 + i * 3}"] = {"origin": origin, "destination": destination, "date": day,
                                           "fare": float(rng.integers(90, 600)), "seats": int(rng.integers(0, 5))}
        return {"today": today.isoformat(), "flights": flights, "bookings": {}, "next_booking": 1}

    @world_tool
    def search_flights(self, origin: str, destination: str, date: str) -> list[dict]:
        """Flights between two cities on a day.

        Args:
            origin: Departure city.
            destination: Arrival city.
            date: The day, as YYYY-MM-DD.
        """
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            raise WorldError(f"date must be YYYY-MM-DD, got {date!r}") from None
        return [{"flight_id": k, **f} for k, f in self.state["flights"].items()
                if (f["origin"], f["destination"], f["date"]) == (origin, destination, date)]

    @world_tool
    def book_flight(self, flight_id: str, passengers: int = 1, cabin: Cabin = "economy") -> dict:
        """Book seats on a flight.

        Args:
            flight_id: The flight's id, from search_flights.
            passengers: Number of travellers.
            cabin: Cabin class.
        """
        if flight_id not in self.state["flights"]:
            raise NotFound(f"no flight {flight_id!r}")
        flight = self.state["flights"][flight_id]
        if passengers > flight["seats"]:
            raise WorldError(f"only {flight['seats']} seats left on {flight_id}")
        flight["seats"] -= passengers
        reference = f"BK{self.state['next_booking']:03d}"
        self.state["next_booking"] += 1
        total = round(flight["fare"] * _CABIN_PRICE[cabin] * passengers, 2)
        self.state["bookings"][reference] = {"flight_id": flight_id, "passengers": passengers, "cabin": cabin, "total": total}
        return {"booking": reference, "total": total}

    @world_tool
    def cancel_booking(self, booking: str) -> dict:
        """Cancel a booking and free its seats.

        Args:
            booking: The booking reference, like BK001.
        """
        if booking not in self.state["bookings"]:
            raise NotFound(f"no booking {booking!r}")
        gone = self.state["bookings"].pop(booking)
        self.state["flights"][gone["flight_id"]]["seats"] += gone["passengers"]
        return {"booking": booking, "status": "cancelled"}

    @world_tool
    def list_bookings(self) -> list[dict]:
        """The user's current bookings."""
        return [{"booking": k, **b} for k, b in self.state["bookings"].items()]


def _open_flight(rng: np.random.Generator, state: dict) -> tuple[str, dict]:
    open_ids = sorted(k for k, f in state["flights"].items() if f["seats"] > 0) or sorted(state["flights"])
    flight_id = choose(rng, open_ids)
    return flight_id, state["flights"][flight_id]


def book(rng: np.random.Generator, state: dict) -> Intent:
    flight_id, flight = _open_flight(rng, state)
    passengers = max(1, int(rng.integers(1, flight["seats"] + 1)) if flight["seats"] else 1)
    cabin = choose(rng, ("economy", "premium", "business"))
    args: dict = {"flight_id": flight_id}
    who = "me" if passengers == 1 else f"{passengers} of us"
    if passengers > 1:
        args["passengers"] = passengers
    cabin_text = "" if cabin == "economy" and rng.random() < 0.5 else f" in {cabin}"
    if cabin_text:
        args["cabin"] = cabin
    when = spoken_date(rng, flight["date"], state["today"])
    request, wording = say(rng, "travel.book", (
        "Book {who} on a flight from {o} to {d} {when}{c}.", "Get {who} seats{c} from {o} to {d} on {when}.",
        "I need to fly {o} to {d} {when}{c}, for {who}.",
    ), who=who, o=flight["origin"], d=flight["destination"], when=when, c=cabin_text)
    search = [ToolCall("search_flights", {"origin": flight["origin"], "destination": flight["destination"], "date": flight["date"]})]
    if flight["seats"] < passengers:
        return Intent(request, [search], f"Flight {flight_id} is full, so I couldn't book it.", ["full"], {"bookings", f"fl:{flight_id}"}, wording)
    total = round(flight["fare"] * _CABIN_PRICE[cabin] * passengers, 2)
    return Intent(request, [search, [ToolCall("book_flight", args)]],
                  f"Booked {flight_id} ({flight['date']}, {cabin}) for {passengers}; total ${money(total)}.", [total],
                  {"bookings", f"fl:{flight_id}"}, wording,
                  f"Book {who} on a flight from {flight['origin']} to {flight['destination']}{cabin_text}.",
                  "Which day would you like to fly?", f"On {when}.")


def find(rng: np.random.Generator, state: dict) -> Intent:
    flight_id, flight = _open_flight(rng, state)
    when = spoken_date(rng, flight["date"], state["today"])
    request, wording = say(rng, "travel.find", (
        "Are there flights from {o} to {d} {when}?", "Check {o} to {d} for {when}: what's the fare?",
    ), o=flight["origin"], d=flight["destination"], when=when)
    found = Travel(state).search_flights(flight["origin"], flight["destination"], flight["date"])
    answer = "Found: " + "; ".join(f"{f['flight_id']} at ${money(f['fare'])}, {f['seats']} seats left" for f in found) + "."
    return Intent(request, [[ToolCall("search_flights", {"origin": flight["origin"], "destination": flight["destination"],
                                                           "date": flight["date"]})]],
                  answer, [f["flight_id"] for f in found], {f"fl:{flight_id}"}, wording)


Travel.intents = (book, find)
Travel.off_topic = (
    ("Do I need a visa for Seoul?", "I can't answer visa questions; my tools only search flights and make or cancel bookings."),
    ("Rent me a car in Lima.", "Car rental isn't something I can book; I can only search flights and book or cancel them."),
)
