"""The smart-home world: rooms with lights, thermostats and a door lock, plus scheduled scenes.

Thermostats take Celsius, so "72°F" or "295K" must be converted; brightness is a percentage the
user may write as "half" or "30 %". Failures: an unknown room, a target temperature outside
10-30 °C, a brightness outside 0-100, a device the room does not have.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, choose, say, world_tool
from chord_env.tools.worlds.phrases import spoken_time
from chord_env.types import ToolCall

_ROOMS = ("kitchen", "living room", "bedroom", "office", "hallway", "bathroom")


class Home(World):
    name = "home"

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict:
        rooms = {r: {"light": int(choose(rng, (0, 40, 100))), "thermostat_c": float(choose(rng, (18, 19.5, 21, 22)))}
                 for r in choose(rng, _ROOMS, k=4)}
        return {"rooms": rooms, "front_door_locked": bool(rng.random() < 0.5), "scenes": []}

    def _room(self, room: str) -> dict:
        if room not in self.state["rooms"]:
            raise NotFound(f"no room called {room!r}; rooms: {', '.join(self.state['rooms'])}")
        return self.state["rooms"][room]

    @world_tool
    def home_status(self) -> dict:
        """Every room's light level and thermostat, and whether the front door is locked."""
        return self.snapshot()

    @world_tool
    def set_light(self, room: str, brightness: int) -> dict:
        """Set a room's light level.

        Args:
            room: The room's name.
            brightness: 0 (off) to 100 (full), in percent.
        """
        if not 0 <= brightness <= 100:
            raise WorldError(f"brightness must be 0-100, got {brightness}")
        self._room(room)["light"] = brightness
        return {"room": room, "brightness": brightness}

    @world_tool
    def set_thermostat(self, room: str, celsius: float) -> dict:
        """Set a room's target temperature.

        Args:
            room: The room's name.
            celsius: Target temperature in degrees Celsius (10-30).
        """
        if not 10 <= celsius <= 30:
            raise WorldError(f"target must be between 10 and 30 degrees Celsius, got {celsius}")
        self._room(room)["thermostat_c"] = celsius
        return {"room": room, "thermostat_c": celsius}

    @world_tool
    def lock_front_door(self, locked: bool) -> dict:
        """Lock or unlock the front door.

        Args:
            locked: True to lock, false to unlock.
        """
        self.state["front_door_locked"] = locked
        return {"front_door_locked": locked}

    @world_tool
    def schedule_scene(self, name: str, time: str, lights: Literal["off", "dim", "full"], rooms: list[str] | None = None) -> dict:
        """Schedule lights for some rooms (all rooms if none given) at a time of day.

        Args:
            name: A label for the scene.
            time: 24-hour HH:MM.
            lights: What the lights do.
            rooms: Which rooms; all if omitted.
        """
        for room in rooms or []:
            self._room(room)
        scene = {"name": name, "time": time, "lights": lights, "rooms": rooms or sorted(self.state["rooms"])}
        self.state["scenes"].append(scene)
        return {"status": "scheduled", **scene}


def thermostat(rng: np.random.Generator, state: dict) -> Intent:
    room = choose(rng, sorted(state["rooms"]))
    celsius = float(choose(rng, (18, 20, 21, 22, 23)))
    spoken = choose(rng, (f"{celsius:g}°C", f"{celsius * 9 / 5 + 32:g}°F", f"{celsius + 273.15:g}K", f"{celsius:g} degrees"))
    request, wording = say(rng, "home.thermostat", (
        "Set the {room} to {t}.", "Make it {t} in the {room}.", "Could you put the {room} thermostat on {t}?",
    ), room=room, t=spoken)
    return Intent(request, [[ToolCall("set_thermostat", {"room": room, "celsius": celsius})]],
                  f"The {room} is set to {celsius:g} °C.", [], {f"room:{room}"}, wording,
                  f"Change the temperature in the {room}.", "What temperature would you like?", f"{spoken}, please.")


def light(rng: np.random.Generator, state: dict) -> Intent:
    room = choose(rng, sorted(state["rooms"]))
    level, spoken = choose(rng, ((0, "off"), (100, "all the way up"), (50, "to half"), (30, "to 30%"), (75, "to 75 percent")))
    request, wording = say(rng, "home.light", (
        "Turn the {room} lights {s}.", "Put the {room} lighting {s}.", "Lights in the {room} {s}, please.",
    ), room=room, s=spoken)
    return Intent(request, [[ToolCall("set_light", {"room": room, "brightness": level})]],
                  f"The {room} lights are at {level}%.", [], {f"room:{room}"}, wording)


def night(rng: np.random.Generator, state: dict) -> Intent:
    rooms = choose(rng, sorted(state["rooms"]), k=2)
    hour = choose(rng, ("22:00", "22:30", "23:00", "23:30"))
    args = {"name": "night", "time": hour, "lights": "off", "rooms": rooms}
    request, wording = say(rng, "home.scene", (
        "Every night at {t}, switch off the lights in the {a} and {b}.",
        "Schedule the {a} and {b} lights to go off at {t}; call it night.",
    ), t=spoken_time(rng, hour), a=rooms[0], b=rooms[1])
    return Intent(request, [[ToolCall("schedule_scene", args)]], f"Scheduled: {rooms[0]} and {rooms[1]} lights off at {hour}.",
                  [hour], {"scenes"}, wording)


def leaving(rng: np.random.Generator, state: dict) -> Intent:
    lit = sorted(r for r, v in state["rooms"].items() if v["light"] > 0)
    request, wording = say(rng, "home.leaving", (
        "I'm heading out: lock the front door and turn off any lights that are on.",
        "Leaving now. Make sure the door is locked and every light is off.",
    ))
    steps = [[ToolCall("home_status", {})],
             [ToolCall("lock_front_door", {"locked": True})] + [ToolCall("set_light", {"room": r, "brightness": 0}) for r in lit]]
    answer = "Front door locked" + (f" and lights off in: {', '.join(lit)}." if lit else "; all lights were already off.")
    return Intent(request, steps, answer, [], {"door"} | {f"room:{r}" for r in state["rooms"]}, wording)


Home.intents = (thermostat, light, night, leaving)
Home.off_topic = (
    ("Order more light bulbs.", "I control your lights, thermostats and door lock, but I can't place orders."),
    ("Is it going to rain this afternoon?", "I have no weather tool here, only your home's lights, thermostats, door lock and scenes."),
)
