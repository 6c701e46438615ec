"""TRL bridge: a registered env's tasks, tools and reward as what TRL's `GRPOTrainer` takes (TRL 1.16).

- `grpo_dataset(env_id, n)`: a `datasets.Dataset` in TRL's conversational prompt format: a
  `prompt` column (the episode's opening messages) and a `chord_seed` column, the reset seed that
  draws the task (TRL hands every column to the reward functions).
- `env_reward(env_id)`: a reward function with the signature GRPOTrainer calls,
  `reward(prompts, completions, **columns) -> list[float]`. It plays each completion through a
  fresh episode of the env, reset with the row's `chord_seed` (`bridges/episodes.play`): every
  assistant turn of the completion is one `env.step`, its tool calls (structured, as TRL's tool
  loop writes them, or as text) in the env's format; the env's own tool results and reward count,
  so training rewards are the env's. A completion that ends before the episode does (a tool call
  with no final answer) gets `truncation_reward`, as in chord-env's own rollouts.

TRL is imported only here and only when these functions run; install it with the `bridges` extra.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import chord_env
from chord_env.bridges.episodes import play, task_rows

RewardFunction = Callable[..., list[float]]


def grpo_dataset(env_id: str, num_examples: int, seed: int = 0, **env_kwargs: Any) -> Any:
    """`num_examples` tasks of `env_id` (reset seeds `seed`, `seed + 1`, ...) as a GRPO training dataset."""
    from datasets import Dataset

    rows = task_rows(env_id, num_examples, seed, **env_kwargs)
    return Dataset.from_list([{"prompt": r.prompt, "chord_seed": r.seed} for r in rows])


def env_reward(env_id: str, truncation_reward: float = 0.0, **env_kwargs: Any) -> RewardFunction:
    """A GRPOTrainer reward function scoring each completion by playing it through `env_id`."""
    env = chord_env.make(env_id, **env_kwargs)

    def reward(prompts: Sequence[Any], completions: Sequence[Any], chord_seed: Sequence[int], **_: Any) -> list[float]:
        return [play(env, int(seed), completion, truncation_reward).reward
                for completion, seed in zip(completions, chord_seed, strict=True)]

    reward.__name__ = env_id.replace("/", "_")
    return reward
