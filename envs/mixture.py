"""Environments as a training run names them: one registered id, or several mixed by weight, for a split.

An `EnvMix` maps registered ids to weights, e.g. `{"chord/FunctionCatalog-v0": 0.8, "chord/Worlds-v0":
0.2}` (a plain id is the mix of one). `MixtureEnv` plays it: each `reset(seed=s)` picks one member with
probability proportional to its weight, from a generator seeded by `s` alone, and resets that member
with the same seed, so the task is a function of the seed and a resumed run sees the same tasks.
Steps, the expert's actions and `close` go to the member of the current episode.

Splits. Envs that have splits take a `split` keyword ("train", "validation", "held_out"; see
`envs/worlds.py` and `envs/function_tasks.py`). `make_for_split` makes an env for a split and returns
None when the env has no such split; envs without splits at all are made plainly for "train" and
for "validation", the trainer then keeping their evaluation seeds disjoint from training seeds.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import chord_env
from chord_env.envs.spaces import AssistantText, Messages

EnvMix = str | dict[str, float]
SPLITS = ("train", "validation", "held_out")


def mix_weights(mix: EnvMix) -> dict[str, float]:
    """The mix as {id: weight}, checked: at least one id, weights finite and > 0."""
    weights = {mix: 1.0} if isinstance(mix, str) else dict(mix)
    if not weights:
        raise ValueError("an env mix needs at least one env id")
    for env_id, w in weights.items():
        if not (isinstance(w, (int, float)) and np.isfinite(w) and w > 0):
            raise ValueError(f"env mix: the weight of {env_id!r} must be a number > 0, got {w!r}")
    return weights


def make_for_split(env_id: str, split: str) -> gym.Env | None:
    """`chord_env.make(env_id, split=split)`; None if the env has splits but not this one. An env that
    takes no `split` keyword is made plainly for "train" and "validation" and has no "held_out"."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    try:
        return chord_env.make(env_id, split=split)
    except TypeError as e:  # the env takes no `split` keyword
        if "split" not in str(e):
            raise
        return chord_env.make(env_id) if split != "held_out" else None
    except (ValueError, KeyError) as e:  # the env has splits, but not this one
        if split not in str(e):
            raise
        return None


class MixtureEnv(gym.Env[list, str]):
    """Several chat envs as one: each episode is one member's, chosen by weight from the reset seed."""

    metadata = {"render_modes": []}

    def __init__(self, members: dict[str, gym.Env], weights: dict[str, float]):
        self.members = members
        self.ids = list(members)
        total = sum(weights[i] for i in self.ids)
        self.probs = np.array([weights[i] / total for i in self.ids])
        self.action_space = AssistantText()
        self.observation_space = Messages()
        self.current: gym.Env | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list, dict]:
        super().reset(seed=seed)
        pick = self.np_random.choice(len(self.ids), p=self.probs)
        self.current = self.members[self.ids[pick]]
        observation, info = self.current.reset(seed=seed, options=options)
        return observation, {**info, "env_id": self.ids[pick]}

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        if self.current is None:
            raise RuntimeError("call reset() before step()")
        return self.current.step(action)

    def expert_actions(self) -> list[str]:
        return self.current.unwrapped.expert_actions()

    def close(self) -> None:
        for env in self.members.values():
            env.close()


def make_mix(mix: EnvMix, split: str = "train") -> gym.Env | None:
    """The env of a mix for a split: the member itself for a mix of one, else a `MixtureEnv` over the
    members that have the split (None if none has it)."""
    weights = mix_weights(mix)
    members = {env_id: env for env_id in weights if (env := make_for_split(env_id, split)) is not None}
    if not members:
        return None
    if len(weights) == 1:
        return next(iter(members.values()))
    return MixtureEnv(members, weights)
