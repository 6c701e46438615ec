"""TRL bridge: a registered env's tasks, tools and reward as what TRL's `GRPOTrainer` takes (TRL 1.16).

- `grpo_dataset(env_id, n)`: a `datasets.Dataset` in TRL's conversational prompt format: a
  `prompt` column (the episode's opening messages) and a `chord_seed` column, the reset seed that
  draws the task (TRL hands every column to the reward functions and to an environment's `reset`).
- `env_reward(env_id)`: a reward function with the signature GRPOTrainer calls,
  `reward(prompts, completions, **columns) -> list[float]`; the reward is the env's.
  Without environments it plays each completion through a fresh episode reset with the row's
  `chord_seed` (`bridges/episodes.play`): every assistant turn is one `env.step`, its tool calls
  (structured, as TRL's tool loop writes them, or as text) in the env's format, and the env's own
  tool results count. With `environment_factory` (below) it ends each rollout's own episode with
  the completion's final answer. A completion that ends before its episode does (a tool call with
  no final answer) gets `truncation_reward`, as in chord-env's own rollouts (`agents/runner.py`).
- `environment_factory(env_id)`: for `GRPOTrainer(environment_factory=...)`, TRL's multi-turn tool
  loop. Each instance holds one episode of the env: `reset(**row)` resets it with the row's
  `chord_seed`, and its public methods are the env's tools, with the signatures and docstrings
  of the typed functions they were made from (so TRL and transformers render their schemas). A
  call TRL makes is one `env.step` with that call written in the env's format, and its answer is
  the env's tool message; parallel calls thus take one env turn each. This suits a `ToolEnv`
  whose tools are the same in every episode (e.g. `chord/Calculator-v0`); an episode that offers
  other tools raises.

TRL is not imported here (its trainer calls these objects); install it with the `bridges` extra.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Callable, Mapping, Sequence

import chord_env
from chord_env.bridges.episodes import assistant_action, play, task_rows, tool_call_format
from chord_env.parsing import FORMATTERS
from chord_env.tools import Tool
from chord_env.types import ToolCall

RewardFunction = Callable[..., list[float]]


def grpo_dataset(env_id: str, num_examples: int, seed: int = 0, **env_kwargs: Any) -> Any:
    """`num_examples` tasks of `env_id` (reset seeds `seed`, `seed + 1`, ...) as a GRPO training dataset."""
    from datasets import Dataset

    rows = task_rows(env_id, num_examples, seed, **env_kwargs)
    return Dataset.from_list([{"prompt": r.prompt, "chord_seed": r.seed} for r in rows])


def env_reward(env_id: str, truncation_reward: float = 0.0, **env_kwargs: Any) -> RewardFunction:
    """A GRPOTrainer reward function scoring each completion with `env_id`'s reward."""
    env = chord_env.make(env_id, **env_kwargs)

    def reward(prompts: Sequence[Any], completions: Sequence[Any], chord_seed: Sequence[int],
               environments: Sequence[ChordEnvironment] | None = None, **_: Any) -> list[float]:
        if environments is not None:
            return [e._finish(completion, truncation_reward)
                    for e, completion in zip(environments, completions, strict=True)]
        return [play(env, int(seed), completion, truncation_reward)
                for completion, seed in zip(completions, chord_seed, strict=True)]

    reward.__name__ = env_id.replace("/", "_")
    return reward


class ChordEnvironment:
    """One episode of a registered env for TRL's tool loop; its tools become methods of the instance.

    TRL takes every public method but `reset` and `get_reward` for a tool, so everything else here
    is private; the reward comes from `env_reward`, which ends the episode with the final answer."""

    def __init__(self, env_id: str, **env_kwargs: Any):
        self._env = chord_env.make(env_id, **env_kwargs)
        self._env.reset(seed=0)
        self._tools: dict[str, Tool] = dict(getattr(self._env.unwrapped, "tools", {}))
        if not self._tools:
            raise ValueError(f"{env_id} offers no tools to call: train on it with grpo_dataset and env_reward alone")
        for name, tool in self._tools.items():
            if name in ("reset", "get_reward") or name.startswith("_"):
                raise ValueError(f"{env_id}: a tool named {name!r} would shadow the environment's own methods")
            setattr(self, name, types.MethodType(_tool_method(tool), self))
        self._reward: float | None = None
        """the env's reward, once the episode has ended"""

    def reset(self, **row: Any) -> None:
        """Start the episode of the row's task (TRL passes the dataset row); the prompt is the row's."""
        self._env.reset(seed=int(row["chord_seed"]))
        offered = set(getattr(self._env.unwrapped, "tools", {}))
        if offered != set(self._tools):
            raise ValueError(f"this episode offers the tools {sorted(offered)}, the environment's methods are "
                             f"{sorted(self._tools)}: environment_factory needs an env whose tools never change")
        self._reward = None

    def _finish(self, completion: Sequence[Mapping[str, Any]], truncation_reward: float = 0.0) -> float:
        """The episode's reward: its final answer (the completion's last assistant turn, when it calls
        no tool) ends it, unless a tool call already did; `truncation_reward` if it has not ended."""
        final = next((m for m in reversed(completion) if m.get("role") == "assistant"), None)
        if self._reward is None and final is not None and not final.get("tool_calls"):
            self._step(assistant_action(final, tool_call_format(self._env)))
        return self._reward if self._reward is not None else truncation_reward

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        if self._reward is not None:
            return "Error: the episode has ended."
        text = FORMATTERS[tool_call_format(self._env)]([ToolCall(name, arguments)], "")
        return "\n".join(m.content for m in self._step(text))

    def _step(self, action: str) -> list:
        observation, reward, terminated, truncated, _ = self._env.step(action)
        if terminated or truncated:
            self._reward = float(reward)
        return observation


def environment_factory(env_id: str, **env_kwargs: Any) -> Callable[[], ChordEnvironment]:
    """What `GRPOTrainer(environment_factory=...)` takes: a callable making one `ChordEnvironment`."""
    return lambda: ChordEnvironment(env_id, **env_kwargs)


def _tool_method(tool: Tool) -> Callable[..., str]:
    """A method with `tool`'s signature (types resolved), name and docstring that steps the episode."""
    def method(self: ChordEnvironment, **arguments: Any) -> str:
        return self._call(tool.name, arguments)

    signature = inspect.signature(tool.fn)
    receiver = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = signature.replace(parameters=[receiver, *signature.parameters.values()])
    method.__annotations__ = typing.get_type_hints(tool.fn)
    method.__name__ = method.__qualname__ = tool.name
    method.__doc__ = tool.fn.__doc__
    return method
