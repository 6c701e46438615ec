"""One way to score: every registered env's reward is its Rubric's, each term reported; held-out suites refuse training."""

from __future__ import annotations

import pytest

import chord_env
from chord_env.envs.mixture import make_for_split
from chord_env.envs.rewards import Rubric
from chord_env.registry import BUILTINS


@pytest.mark.parametrize("env_id", sorted(BUILTINS))
def test_every_builtin_env_scores_through_its_rubric(env_id):
    env = chord_env.make(env_id)
    rubric = env.unwrapped.rubric
    assert isinstance(rubric, Rubric) and env.unwrapped.reward_range == rubric.bounds
    env.reset(seed=0)
    total = 0.0
    for action in env.unwrapped.expert_actions():
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
    assert terminated and not truncated and info["success"] is True
    breakdown = info["reward_breakdown"]
    assert set(breakdown) == set(rubric.terms) and info["reward_errors"] == []
    assert total == pytest.approx(sum(weight * breakdown[name] for name, (weight, _) in rubric.terms.items()))
    env.close()


@pytest.mark.parametrize("env_id", ["chord/BFCL-v0", "chord/BFCLMultiTurn-v0", "chord/ArithmeticHeldOut-v0"])
def test_held_out_suites_refuse_the_train_split(env_id):
    for split in ("train", "validation"):
        with pytest.raises(ValueError, match=split):
            chord_env.make(env_id, split=split)
        assert make_for_split(env_id, split) is None
    held_out = make_for_split(env_id, "held_out")
    assert held_out is not None and held_out.reset(seed=0)[0]
    held_out.close()


def test_a_failing_term_scores_zero_and_fails_the_episode():
    from chord_env.envs import Task
    from chord_env.envs.function_call_env import FunctionCallEnv

    env = FunctionCallEnv(tasks=[Task(prompt="q", answer=[])])
    env.rubric = Rubric({"broken": (1.0, lambda episode: 1 / 0)})
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("No call needed.")
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    assert info["reward_breakdown"] == {"broken": 0.0} and "ZeroDivisionError" in info["reward_errors"][0]
