"""World tasks: every expert trace earns full reward when replayed; generation is deterministic;
the ask-the-user extension of ToolEnv; partial credit for wrong agents."""

import json
from collections import Counter

import pytest

from chord_env.envs import ToolEnv
from chord_env.envs.world_tasks import PATTERNS, world_task
from chord_env.envs.worlds import MAX_REWARD, world_env
from chord_env.parsing import FORMATTERS, format_hermes
from chord_env.tools.worlds import WORLDS
from chord_env.types import ToolCall

TASKS_PER_WORLD = 300


def play(env, task, actions):
    env.reset(options={"task": task})
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return reward, info
    raise AssertionError(f"{task.id}: the episode did not end")


def rendered(task, fmt):
    return [FORMATTERS[fmt]([ToolCall(c["name"], c["arguments"]) for c in t["calls"]], t["content"]) for t in task.info["turns"]]


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_every_expert_trace_earns_full_reward(world):
    env = world_env(world)
    patterns = Counter()
    for seed in range(TASKS_PER_WORLD):
        task = world_task(world, seed)
        reward, info = play(env, task, task.expert)
        assert reward == pytest.approx(MAX_REWARD) and info["success"], (task.id, info["reward_breakdown"])
        patterns[task.info["pattern"]] += 1
    assert set(patterns) == set(PATTERNS), patterns


@pytest.mark.parametrize("fmt", ["json", "pythonic"])
def test_expert_turns_replay_in_other_tool_call_formats(fmt):
    for world in WORLDS:
        env = world_env(world, parser=fmt)
        for seed in range(40):
            task = world_task(world, seed)
            reward, info = play(env, task, rendered(task, fmt))
            assert reward == pytest.approx(MAX_REWARD) and info["success"], task.id


def test_generation_is_deterministic_per_seed():
    for world in WORLDS:
        for seed in (0, 7, 123456):
            a, b = world_task(world, seed), world_task(world, seed)
            assert json.dumps(a.info, sort_keys=True) == json.dumps(b.info, sort_keys=True) and a.expert == b.expert
        assert world_task(world, 1).info != world_task(world, 2).info


def test_ask_user_task_gets_the_users_answer_and_rewards_asking_first():
    task = world_task("bank", 0, pattern="ask_user")
    env = world_env("bank")
    env.reset(options={"task": task})
    obs, reward, terminated, *_ = env.step(task.expert[0])
    assert not terminated and obs[0].role == "user" and obs[0].content == task.info["followups"][0]
    # an agent that calls at once, without asking: the user still answers its final message once
    reward, info = play(env, task, task.expert[1:] + task.expert[-1:])
    assert info["reward_breakdown"]["protocol"] == 0.0 and reward < MAX_REWARD and not info["success"]


def test_multi_turn_user_adds_a_request_after_the_first_is_done():
    task = world_task("files", 3, pattern="multi_turn")
    env = world_env("files")
    env.reset(options={"task": task})
    finals = [i for i, t in enumerate(task.info["turns"]) if not t["calls"]]
    for i, action in enumerate(task.expert):
        obs, reward, terminated, *_ = env.step(action)
        if i == finals[0]:
            assert obs[0].role == "user" and not terminated
    assert terminated and reward == pytest.approx(MAX_REWARD)


def test_without_a_user_simulator_a_final_message_ends_the_episode():
    task = world_task("bank", 0, pattern="ask_user")
    env = ToolEnv(tools=[], tasks=[task])
    env.reset(seed=0)
    assert env.step(task.expert[0])[2] is True


def test_wrong_agents_get_partial_credit():
    task = world_task("bank", 5, pattern="single")
    env = world_env("bank")
    reward, info = play(env, task, ["I'd rather not."])
    assert info["reward_breakdown"]["answer"] == 0.0 and reward < MAX_REWARD and not info["success"]
    transfer = world_task("bank", 0, pattern="ask_user")
    call = transfer.info["turns"][1]["calls"][0]
    wrong = format_hermes([ToolCall(call["name"], {**call["arguments"], "amount": call["arguments"]["amount"] + 1})])
    reward, info = play(env, transfer, [transfer.expert[0], wrong, transfer.expert[-1]])
    assert info["reward_breakdown"]["state"] == 0.0 and not info["success"]
    # the right transfer plus a side effect nobody asked for (freezing the card): partial credit
    extra = format_hermes([ToolCall("freeze_card", {"last4": transfer.info["state"]["card"]["last4"]})])
    reward, info = play(env, transfer, [transfer.expert[0], transfer.expert[1], extra, transfer.expert[-1]])
    assert 0.0 < info["reward_breakdown"]["state"] < 1.0 and 0.0 < reward < MAX_REWARD and not info["success"]
    no_tool = world_task("shop", 0, pattern="no_tool")
    reward, info = play(world_env("shop"), no_tool, [format_hermes([ToolCall("search_products", {"query": "bike"})]), no_tool.expert[0]])
    assert info["reward_breakdown"]["protocol"] == 0.0 and not info["success"]


def test_distractor_tasks_offer_other_worlds_tools():
    task = world_task("calendar", 11, pattern="distractors")
    env = world_env("calendar")
    _, info = env.reset(options={"task": task})
    offered = {s.name for s in info["tools"]}
    assert len(task.info["distractors"]) == 2 and len(offered) > len(WORLDS["calendar"].templates())
