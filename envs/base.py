"""`ChatEnv`: what every chord-env environment shares, so each env states only its own rules.

A chat env's action is the assistant's text (`AssistantText`), its observation the new messages
(`Messages`). It draws a task per episode (`draw_task`), opens with the system prompt and the
task's prompt, and refuses programming mistakes at once: a non-`str` action (TypeError) or a step
after the episode ended (RuntimeError). It scores through its `rubric` (`envs/rewards.py`), whose
bounds are its `reward_range`; `_score_turn` scores a one-turn episode. Subclasses implement `step`
and may extend `reset`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from chord_env.envs.rewards import Episode, Rubric
from chord_env.envs.spaces import AssistantText, Messages
from chord_env.envs.task import Task, TaskSource, draw_task, opening_messages
from chord_env.parsing import ParseResult
from chord_env.types import Message


class ChatEnv(gym.Env[list, str]):
    """Base of the chat environments: spaces, task drawing, the opening messages, step preconditions, scoring."""

    metadata = {"render_modes": []}
    rubric: Rubric | None = None
    """The reward terms (every chord-env env sets one)."""

    def __init__(self, tasks: TaskSource, system_prompt: str | None = None):
        if not callable(tasks) and len(tasks) == 0:
            raise ValueError(f"{type(self).__name__} needs at least one task")
        self._tasks = tasks
        self.system_prompt = system_prompt
        self.action_space = AssistantText()
        self.observation_space = Messages()
        self._done = True

    @property
    def reward_range(self) -> tuple[float, float]:  # type: ignore[override]
        """The lowest and highest reward an episode can earn: the rubric's bounds, [0, 1] without one
        (`chord-env envs list --verbose` shows it)."""
        return self.rubric.bounds if self.rubric is not None else (0.0, 1.0)

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

    def _score_turn(self, action: str, parsed: ParseResult) -> tuple[float, dict[str, Any]]:
        """End a one-turn episode whose only action is `action` (parsed as `parsed`) and score it with
        the rubric: the reward and the final step's info (`Rubric.score`)."""
        self._done = True
        reply = Message("assistant", parsed.content, tool_calls=list(parsed.calls))
        episode = Episode(
            task=self.task,
            messages=[*opening_messages(self.task, self.system_prompt), reply],
            final_answer=parsed.content,
            tool_results=[],
            parse_errors=int(parsed.error is not None),
            turns=1,
            tools={},
            truncation=None,
            actions=[action],
        )
        return self.rubric.score(episode)

    def expert_actions(self) -> list[str]:
        """The current task's expert turns (for scripted episodes and `chord-env envs check`)."""
        return list(self.task.expert)
