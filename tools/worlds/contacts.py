"""The contacts world: an address book and text messages sent to its contacts.

Messages go to a contact id, so sending to a person by name takes a lookup first. Failures: no
contact by that name, several contacts matching a name, an invalid phone number, a blocked contact.
"""

from __future__ import annotations

import re

import numpy as np

from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, choose, say, world_tool
from chord_env.types import ToolCall

_PEOPLE = ("Amara Okafor", "Ben Hughes", "Chen Wei", "Dana Levi", "Elif Yilmaz", "Farid Haddad", "Greta Lund",
           "Hugo Martin", "Ines Costa", "Jonas Berg")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{6,16}[0-9]$")
_NOTES = ("running 10 minutes late", "the keys are under the mat", "see you at 7", "happy birthday!",
          "can you call me back?", "dinner is at our place tonight")


class Contacts(World):
    name = "contacts"

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict:
        people = {f"c{10 + i}": {"name": n, "phone": f"+1 555 01{int(rng.integers(10, 100))}", "blocked": False}
                  for i, n in enumerate(choose(rng, _PEOPLE, k=6))}
        return {"contacts": people, "sent": [], "next_id": 40}

    def _contact(self, contact_id: str) -> dict:
        if contact_id not in self.state["contacts"]:
            raise NotFound(f"no contact with id {contact_id!r}")
        return self.state["contacts"][contact_id]

    @world_tool
    def find_contact(self, name: str) -> list[dict]:
        """Contacts whose name contains the given text (case-insensitive).

        Args:
            name: A full or partial name.
        """
        found = [{"contact_id": k, **c} for k, c in self.state["contacts"].items() if name.lower() in c["name"].lower()]
        if not found:
            raise NotFound(f"no contact matching {name!r}")
        return found

    @world_tool
    def add_contact(self, name: str, phone: str, email: str | None = None) -> dict:
        """Save a new contact.

        Args:
            name: Full name.
            phone: Phone number, digits with optional +, spaces or dashes.
            email: Email address, if given.
        """
        if not _PHONE.match(phone):
            raise WorldError(f"{phone!r} is not a valid phone number")
        contact_id = f"c{self.state['next_id']}"
        self.state["next_id"] += 1
        self.state["contacts"][contact_id] = {"name": name, "phone": phone, "blocked": False}
        if email is not None:
            self.state["contacts"][contact_id]["email"] = email
        return {"contact_id": contact_id}

    @world_tool
    def send_text(self, contact_id: str, text: str) -> dict:
        """Send a text message to a contact.

        Args:
            contact_id: The contact's id, from find_contact.
            text: The message.
        """
        contact = self._contact(contact_id)
        if contact["blocked"]:
            raise WorldError(f"{contact['name']} is blocked")
        self.state["sent"].append({"to": contact_id, "text": text})
        return {"status": "sent", "to": contact["name"]}

    @world_tool
    def block_contact(self, contact_id: str) -> dict:
        """Block a contact: no messages to or from them.

        Args:
            contact_id: The contact's id, from find_contact.
        """
        self._contact(contact_id)["blocked"] = True
        return {"contact_id": contact_id, "blocked": True}


def _person(rng: np.random.Generator, state: dict) -> tuple[str, dict]:
    contact_id = choose(rng, sorted(state["contacts"]))
    return contact_id, state["contacts"][contact_id]


def text(rng: np.random.Generator, state: dict) -> Intent:
    contact_id, person = _person(rng, state)
    first = person["name"].split()[0]
    note = choose(rng, _NOTES)
    request, wording = say(rng, "contacts.text", (
        "Text {who} \"{note}\".", "Send a message to {who} saying {note}.", "Tell {who} by SMS: {note}",
    ), who=first, note=note)
    steps = [[ToolCall("find_contact", {"name": first})], [ToolCall("send_text", {"contact_id": contact_id, "text": note})]]
    return Intent(request, steps, f"Sent to {person['name']}: \"{note}\".", [], {f"person:{contact_id}", "sent"},
                  wording, f"Send a message to {first}.", f"What should the message to {first} say?", f"Say \"{note}\".")


def phone(rng: np.random.Generator, state: dict) -> Intent:
    contact_id, person = _person(rng, state)
    last = person["name"].split()[1]
    request, wording = say(rng, "contacts.phone", (
        "What's {who}'s number?", "Look up the phone number for {who}.", "I need {who}'s phone number.",
    ), who=last)
    return Intent(request, [[ToolCall("find_contact", {"name": last})]], f"{person['name']}: {person['phone']}.",
                  [person["phone"]], {f"person:{contact_id}"}, wording)


def add(rng: np.random.Generator, state: dict) -> Intent:
    name = choose(rng, [p for p in _PEOPLE if p not in {c["name"] for c in state["contacts"].values()}])
    number = f"+1 555 02{int(rng.integers(10, 100))}"
    args = {"name": name, "phone": number}
    with_email = rng.random() < 0.5
    if with_email:
        args["email"] = f"{name.split()[0].lower()}@example.org"
    email = f", email {args['email']}" if with_email else ""
    request, wording = say(rng, "contacts.add", (
        "Save {name}, {phone}{email}.", "Add a contact: {name}, phone {phone}{email}.",
        "New contact please: {name} ({phone}){email}.",
    ), name=name, phone=number, email=email)
    return Intent(request, [[ToolCall("add_contact", args)]], f"Saved {name}.", [name], {"new-contact"}, wording,
                  f"Add {name} to my contacts{email}.", f"What's {name.split()[0]}'s phone number?", f"It's {number}.")


def block(rng: np.random.Generator, state: dict) -> Intent:
    contact_id, person = _person(rng, state)
    request, wording = say(rng, "contacts.block", (
        "Block {who}.", "I don't want to hear from {who} any more; block them.",
    ), who=person["name"])
    steps = [[ToolCall("find_contact", {"name": person["name"]})], [ToolCall("block_contact", {"contact_id": contact_id})]]
    return Intent(request, steps, f"{person['name']} is blocked.", [person["name"]], {f"person:{contact_id}"}, wording)


Contacts.intents = (text, phone, add, block)
Contacts.off_topic = (
    ("Call my mum.", "I can't place phone calls; I can look up contacts, save new ones, send texts and block people."),
    ("What did Ben text me yesterday?", "I can't read incoming messages: my tools only find and add contacts, send texts and block contacts."),
)
