"""`ChatEnv`: what every chord-env environment shares, so each env states only its own rules.

A chat env's action is the assistant's text (`AssistantText`), its observation the new messages
(`Messages`). It draws a task per episode (`draw_task`), opens with the system prompt and the
task's prompt, and refuses programming mistakes at once: a non-`str` action (TypeError) or a step
after the episode ended (RuntimeError). Subclasses implement `step` and may extend `reset`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from chord_env.envs.spaces import AssistantText, Messages
from chord_env.envs.task import Task, TaskSource, draw_task, opening_messages


class ChatEnv(gym.Env[list, str]):
    """Base of the chat environments: spaces, task drawing, the opening messages, step preconditions."""

    metadata = {"render_modes": []}
    reward_range: tuple[float, float] = (0.0, 1.0)
    """the lowest and highest reward an episode can earn (`chord-env envs list --verbose` shows it)"""

    def __init__(self, tasks: TaskSource, system_prompt: str | None = None):
        if not callable(tasks) and len(tasks) == 0:
            raise ValueError(f"{type(self).__name__} needs at least one task")
        self._tasks = tasks
        self.system_prompt = system_prompt
        self.action_space = AssistantText()
        self.observation_space = Messages()
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list, dict]:
        super().reset(seed=seed)
        self.task: Task = draw_task(self._tasks, self.np_random, options or {})
        self._done = False
        return opening_messages(self.task, self.system_prompt), {"tools": list(self.task.tools), "task_id": self.task.id}

    def _begin_step(self, action: Any) -> None:
        if not isinstance(action, str):
            raise TypeError(f"{type(self).__name__} actions are the assistant's text (str), got {type(action).__name__}")
        if self._done:
            raise RuntimeError("the episode has ended: call reset() before step()")

    def expert_actions(self) -> list[str]:
        """The current task's expert turns (for scripted episodes and `chord-env envs check`)."""
        return list(self.task.expert)


