"""Stateful tool worlds of our own design, each a simulated service with typed tools and task material.

`WORLDS` maps a world's name to its class; `HELD_OUT` names the worlds kept out of training data
entirely (their tasks only appear in the held-out split, to measure generalisation to unseen tools).
No tool name is shared between two worlds, so any worlds can be offered together (distractors).
"""

from chord_env.tools.worlds.bank import Bank
from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, wild_spec
from chord_env.tools.worlds.calendar import Calendar
from chord_env.tools.worlds.contacts import Contacts
from chord_env.tools.worlds.converter import Converter
from chord_env.tools.worlds.files import Files
from chord_env.tools.worlds.home import Home
from chord_env.tools.worlds.shop import Shop
from chord_env.tools.worlds.travel import Travel

WORLDS: dict[str, type[World]] = {w.name: w for w in (Calendar, Bank, Shop, Files, Contacts, Converter, Home, Travel)}
HELD_OUT: tuple[str, ...] = ("home", "travel")
TRAIN_WORLDS: tuple[str, ...] = tuple(n for n in WORLDS if n not in HELD_OUT)

__all__ = ["HELD_OUT", "Intent", "NotFound", "TRAIN_WORLDS", "WORLDS", "World", "WorldError", "wild_spec"]
