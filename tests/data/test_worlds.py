"""Tool worlds: their tools, schemas, failures and the wild schema spellings."""

import json

import numpy as np

from chord_env.tools import execute
from chord_env.tools.worlds import HELD_OUT, TRAIN_WORLDS, WORLDS, wild_spec
from chord_env.types import ToolCall, ToolSpec


def test_at_least_eight_worlds_with_four_to_ten_tools_and_no_shared_tool_name():
    assert len(WORLDS) >= 8
    names = [t.name for w in WORLDS.values() for t in w.templates()]
    assert len(names) == len(set(names)), "two worlds share a tool name"
    for world in WORLDS.values():
        assert 4 <= len(world.templates()) <= 10, world.name
        assert world.intents and world.off_topic


def test_held_out_worlds_are_whole_worlds_outside_training():
    assert set(HELD_OUT) <= set(WORLDS) and not set(HELD_OUT) & set(TRAIN_WORLDS)
    assert set(HELD_OUT) | set(TRAIN_WORLDS) == set(WORLDS)


def test_each_episode_gets_a_fresh_world():
    cls = WORLDS["bank"]
    state = cls.random_state(np.random.default_rng(0))
    first = {t.name: t for t in cls(state).tools()}
    execute(ToolCall("transfer_funds", {"from_account": "savings", "to_account": "checking", "amount": 10}), first)
    fresh = {t.name: t for t in cls(state).tools()}
    balance = execute(ToolCall("get_balance", {"account": "savings"}), fresh).content
    assert json.loads(balance)["balance"] == state["balances"]["savings"]


def test_realistic_failures_come_back_as_tool_errors():
    bank = {t.name: t for t in WORLDS["bank"](WORLDS["bank"].random_state(np.random.default_rng(1))).tools()}
    broke = execute(ToolCall("transfer_funds", {"from_account": "checking", "to_account": "savings", "amount": 1e9}), bank)
    assert broke.error == "tool_exception" and "insufficient funds" in broke.content
    calendar = {t.name: t for t in WORLDS["calendar"](WORLDS["calendar"].random_state(np.random.default_rng(1))).tools()}
    bad_date = execute(ToolCall("list_events", {"date": "March 5th"}), calendar)
    assert bad_date.error == "tool_exception" and "YYYY-MM-DD" in bad_date.content
    missing = execute(ToolCall("cancel_event", {"event_id": "ev-999"}), calendar)
    assert "NotFound" in missing.content and "ev-999" in missing.content


def test_wild_spelling_changes_only_what_the_model_sees():
    cls = WORLDS["converter"]
    tools = {t.name: t for t in cls(cls.random_state(np.random.default_rng(0))).tools("wild")}
    params = tools["convert_length"].spec.parameters
    assert params["type"] == "dict" and params["properties"]["value"]["type"] == "float"
    assert execute(ToolCall("convert_length", {"value": 6, "from_unit": "cm", "to_unit": "mm"}), tools).content == '{"value": 60.0, "unit": "mm"}'
    nested = ToolSpec("f", "", {"type": "object", "properties": {"x": {"type": ["number", "null"]}, "l": {"type": "array", "items": {"type": "object"}}}})
    assert wild_spec(nested).parameters == {"type": "dict", "properties": {"x": {"type": ["float", "null"]}, "l": {"type": "array", "items": {"type": "dict"}}}}
