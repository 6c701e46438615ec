"""World envs: `info["success"]` means solved, rewards lie in [0, 1], doing nothing earns only the
format credit, and the splits hand out disjoint, deterministic tasks."""

import zlib

import numpy as np
import pytest

import chord_env
from chord_env.envs.splits import HELD_OUT_SEEDS, SPLITS, TRAIN_SEEDS, VALIDATION_SEEDS
from chord_env.envs.world_tasks import world_task
from chord_env.envs.worlds import MAX_REWARD, WEIGHTS, declines, world_env, world_rubric
from chord_env.parsing import format_hermes
from chord_env.tools.worlds import HELD_OUT, TRAIN_WORLDS, WORLDS
from chord_env.types import ToolCall

SEEDS = range(300)
FORMAT_CREDIT = WEIGHTS["format"]
_VOCAB = ("the", "blue", "account", "meeting", "order", "file", "seven", "yes", "done", "okay", "light", "flight",
          "please", "transfer", "moved", "balance", "now", "it", "is", "booked", "your", "sent")


def play(env, task, policy):
    """Run one episode; `policy(task, turn)` gives the assistant's text for each turn."""
    env.reset(options={"task": task})
    for turn in range(env.max_turns):
        _, reward, terminated, truncated, info = env.step(policy(task, turn))
        if terminated or truncated:
            return reward, info
    raise AssertionError(f"{task.id}: the episode did not end")


def expert(task, turn):
    return task.expert[turn]


def do_nothing(task, turn):
    return "OK, sure." if turn == 0 else "Alright."


def random_text(task, turn):
    """Words of the request and a vocabulary, and numbers: text that can echo facts but does nothing."""
    rng = np.random.default_rng([zlib.crc32(task.id.encode()), turn])
    words = list(_VOCAB) + task.prompt[-1].content.split()
    return " ".join(str(rng.integers(0, 5000)) if rng.random() < 0.2 else str(rng.choice(words)) for _ in range(25))


def test_rewards_are_normalised_and_the_expert_earns_the_maximum():
    rubric = world_rubric()
    assert MAX_REWARD == 1.0 == pytest.approx(rubric.maximum) and all(w > 0 for w, _ in rubric.terms.values())


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_expert_succeeds_and_doing_nothing_never_does(world):
    env = world_env(world)
    for seed in SEEDS:
        task = world_task(world, seed)
        reward, info = play(env, task, expert)
        assert info["success"] is True and reward == pytest.approx(MAX_REWARD), (task.id, info["reward_breakdown"])
        for policy in (do_nothing, random_text):
            reward, info = play(env, task, policy)
            assert info["success"] is False, (policy.__name__, task.id, info["reward_breakdown"])
            # the format credit is all it gets, on every task (no_tool ones included: they need a decline)
            assert 0.0 <= reward <= FORMAT_CREDIT + 1e-9, (policy.__name__, task.id, info["reward_breakdown"])


def test_partial_work_earns_partial_credit_and_no_success():
    task = next(t for t in (world_task("bank", s, pattern="parallel") for s in range(50))
                if all(c["name"] == "get_balance" for c in t.info["turns"][0]["calls"]))
    calls = [ToolCall(c["name"], c["arguments"]) for c in task.info["turns"][0]["calls"]]
    reward, info = play(world_env("bank"), task, lambda t, turn: [format_hermes(calls[:1]), t.expert[-1]][turn])
    assert info["success"] is False and FORMAT_CREDIT < reward < MAX_REWARD
    assert info["reward_breakdown"]["state"] == pytest.approx(0.5)  # a lookup task: half the lookups made


def test_a_no_tool_task_is_solved_by_declining_without_a_call():
    task = world_task("calendar", 0, pattern="no_tool")
    env = world_env("calendar")
    assert play(env, task, lambda t, turn: "Sorry, I can't do that with these tools.")[1]["success"] is True
    reward, info = play(env, task, lambda t, turn: "Done! I took care of it.")
    assert info["success"] is False and reward == pytest.approx(FORMAT_CREDIT)
    assert all(declines(w.off_topic[i][1]) for w in WORLDS.values() for i in range(len(w.off_topic)))


def test_truncated_episodes_never_succeed():
    task = world_task("bank", 1, pattern="single")
    env = world_env("bank", max_turns=1)
    env.reset(options={"task": task})
    *_, truncated, info = env.step(task.expert[0])
    assert truncated and info["success"] is False


def _task_ids(split, seeds, **kwargs):
    env = chord_env.make("chord/Worlds-v0", split=split, **kwargs)
    return [env.reset(seed=s)[1]["task_id"] for s in seeds]


def test_splits_draw_disjoint_deterministic_tasks_from_their_own_worlds_and_seeds():
    ranges = {"train": TRAIN_SEEDS, "validation": VALIDATION_SEEDS, "held_out": HELD_OUT_SEEDS}
    drawn = {}
    for split, (worlds, seeds) in SPLITS.items():
        assert seeds == ranges[split]
        ids = _task_ids(split, range(300))
        assert ids == _task_ids(split, range(300)), f"{split}: the task is not a function of the reset seed"
        for task_id in ids:
            assert task_id.split("-")[0] in worlds and int(task_id.rsplit("-", 1)[1]) in seeds, (split, task_id)
        drawn[split] = set(ids)
        assert len(drawn[split]) > 250  # seeds spread over the split's tasks
    assert {i.split("-")[0] for i in drawn["held_out"]} == set(HELD_OUT)
    assert {i.split("-")[0] for i in drawn["train"]} == {i.split("-")[0] for i in drawn["validation"]} == set(TRAIN_WORLDS)
    assert not drawn["train"] & drawn["validation"] and not drawn["train"] & drawn["held_out"]
    assert not drawn["validation"] & drawn["held_out"]


def test_one_world_envs_default_to_their_worlds_split_and_refuse_others():
    home = chord_env.make("chord/World-Home-v0")
    assert all(int(home.reset(seed=s)[1]["task_id"].rsplit("-", 1)[1]) in HELD_OUT_SEEDS for s in range(20))
    bank = chord_env.make("chord/World-Bank-v0", split="validation")
    assert all(int(bank.reset(seed=s)[1]["task_id"].rsplit("-", 1)[1]) in VALIDATION_SEEDS for s in range(20))
    with pytest.raises(ValueError, match="home"):
        world_env("home", split="train")
    with pytest.raises(ValueError, match="bank"):
        world_env("bank", split="held_out")
    with pytest.raises(ValueError, match="mix"):
        world_env(["bank", "home"])
    with pytest.raises(ValueError, match="unknown split"):
        world_env(split="test")


@pytest.mark.parametrize("env_id", sorted(chord_env.registry.BUILTINS))
def test_every_builtin_env_reports_success_on_its_final_step(env_id):
    env = chord_env.make(env_id)
    env.reset(seed=0)
    for action in env.unwrapped.expert_actions():
        *_, terminated, truncated, info = env.step(action)
    assert terminated and not truncated and info["success"] is True, info
