"""The tool-world splits, shared by the world envs (`world_env(split=...)`) and `data build`.

- `train`: the training worlds (`TRAIN_WORLDS`) with task seeds from `TRAIN_SEEDS`;
- `validation`: the same worlds with seeds from `VALIDATION_SEEDS` (never used for training);
- `held_out`: whole worlds never used for training (`HELD_OUT`) with seeds from `HELD_OUT_SEEDS`.

A world task is a deterministic function of `(world, task seed)` and its id names both, so the
seed ranges being disjoint makes the splits' tasks disjoint. This module imports only the worlds,
so both `envs.worlds` and `envs.data_build` can import it.
"""

from __future__ import annotations

from chord_env.tools.worlds import HELD_OUT, TRAIN_WORLDS

TRAIN_SEEDS = range(0, 1_000_000)
VALIDATION_SEEDS = range(1_000_000, 1_100_000)
HELD_OUT_SEEDS = range(2_000_000, 2_100_000)

SPLITS: dict[str, tuple[tuple[str, ...], range]] = {
    "train": (TRAIN_WORLDS, TRAIN_SEEDS),
    "validation": (TRAIN_WORLDS, VALIDATION_SEEDS),
    "held_out": (HELD_OUT, HELD_OUT_SEEDS),
}
"""Split name -> (the worlds whose tasks it holds, the task seeds it draws from)."""
