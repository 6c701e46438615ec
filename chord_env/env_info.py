"""`chord-env envs list --verbose`: what each registered env is, the tools it offers and its reward scale.

The description is the first paragraph of the entry point's docstring; the tools are those `reset(seed=0)`
offers (`info["tools"]`), marked as varying when `reset(seed=1)` offers others; the reward scale is
the env's `reward_range` (chord-env's envs declare it: a rubric's bounds, else [0, 1]). An env that
cannot be made or reset is listed with the error instead.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass, field

import gymnasium as gym

from chord_env.registry import full_id, make


@dataclass
class EnvInfo:
    env_id: str
    description: str = ""
    tools: list[str] = field(default_factory=list)
    tools_vary: bool = False
    reward_range: tuple[float, float] | None = None
    error: str | None = None

    def format(self) -> str:
        """Indented lines under the env id, as `envs list --verbose` prints them."""
        lines = [self.env_id, f"  {self.description or '(no description)'}"]
        if self.error:
            return "\n".join(lines + [f"  error: {self.error}"])
        tools = ", ".join(self.tools) if self.tools else "none"
        lines.append(f"  tools{' (seed 0; they vary with the task)' if self.tools_vary else ''}: {tools}")
        low_high = "not declared" if self.reward_range is None else f"{self.reward_range[0]:g} to {self.reward_range[1]:g}"
        return "\n".join(lines + [f"  reward: {low_high}"])


def _description(entry_point: object) -> str:
    if isinstance(entry_point, str):
        module, _, name = entry_point.partition(":")
        entry_point = getattr(importlib.import_module(module), name)
    bound = ""
    if isinstance(entry_point, functools.partial):  # e.g. world_env("bank"): the function's doc, and what is bound
        bound = f" [{', '.join([*map(repr, entry_point.args), *(f'{k}={v!r}' for k, v in entry_point.keywords.items())])}]"
        entry_point = entry_point.func
    doc = inspect.getdoc(entry_point) or ""
    return " ".join(doc.split("\n\n")[0].split()) + bound


def _tool_names(env: gym.Env, seed: int) -> list[str]:
    return [spec.name for spec in env.reset(seed=seed)[1].get("tools", [])]


def describe(env_id: str) -> EnvInfo:
    """The description, tools and reward scale of a registered env; never raises for env faults."""
    info = EnvInfo(full_id(env_id))
    try:
        info.description = _description(gym.spec(info.env_id).entry_point)
        env = make(info.env_id)
        try:
            info.tools = _tool_names(env, 0)
            info.tools_vary = _tool_names(env, 1) != info.tools
            bounds = getattr(env.unwrapped, "reward_range", None)
            info.reward_range = (float(bounds[0]), float(bounds[1])) if bounds is not None else None
        finally:
            env.close()
    except Exception as e:  # a broken plugin env is listed with its error, never stops the listing
        info.error = f"{type(e).__name__}: {e}"
    return info
