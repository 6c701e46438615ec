"""Env mixes: members chosen by weight from the reset seed alone; splits that an env lacks are absent."""

from collections import Counter

import pytest

from chord_env.envs.mixture import MixtureEnv, make_for_split, make_mix, mix_weights

MIX = {"chord/FunctionCall-v0": 3.0, "chord/Calculator-v0": 1.0}


def test_members_follow_the_weights_and_the_seed():
    env = make_mix(MIX)
    assert isinstance(env, MixtureEnv)
    picks = [env.reset(seed=s)[1]["env_id"] for s in range(400)]
    counts = Counter(picks)
    assert 0.65 < counts["chord/FunctionCall-v0"] / 400 < 0.85  # 0.75 expected; binomial sd ~0.022
    again = make_mix(MIX)
    assert [again.reset(seed=s)[1]["env_id"] for s in range(50)] == picks[:50]
    seed = picks.index("chord/FunctionCall-v0")
    env.reset(seed=seed)
    _, reward, terminated, _, _ = env.step(env.expert_actions()[0])  # steps go to the episode's member
    assert terminated and reward == 1.0


def test_a_mix_of_one_is_the_env_itself_and_envs_without_splits_have_no_held_out():
    env = make_mix("chord/FunctionCall-v0")
    assert not isinstance(env.unwrapped, MixtureEnv)
    assert make_for_split("chord/FunctionCall-v0", "held_out") is None
    assert make_for_split("chord/FunctionCall-v0", "validation") is not None
    assert make_mix("chord/FunctionCall-v0", "held_out") is None
    with pytest.raises(ValueError, match="split"):
        make_for_split("chord/FunctionCall-v0", "test")


@pytest.mark.parametrize("bad", [{}, {"chord/FunctionCall-v0": 0}, {"chord/FunctionCall-v0": float("nan")}])
def test_bad_mixes_are_refused(bad):
    with pytest.raises(ValueError, match="env mix"):
        mix_weights(bad)
