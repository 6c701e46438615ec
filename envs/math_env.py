"""MathEnv: a single-turn Gymnasium environment whose reward is a math-verify check of the answer.

The observation is the problem as a user message (after an optional system prompt); the action is
the model's full answer (reasoning and all); the episode ends after that one step with reward 1.0 if
math-verify finds the gold answer in it (a `\\boxed{}` answer is preferred by math-verify's
extraction, plain numbers work too) and 0.0 otherwise. Verification runs in a worker process
(`math_verify_pool`), so its timeout holds even when the env is stepped off the main thread.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from chord_env.envs.math_verify_pool import VerifierPool, shared_pool
from chord_env.envs.spaces import AssistantText, Messages
from chord_env.envs.task import TaskSource, draw_task, opening_messages


class MathEnv(gym.Env[list, str]):
    """One problem, one answer, a verified reward.

    Args:
        tasks: tasks whose `answer` is the gold answer as a string (or a generator of them).
        system_prompt: an optional system message, e.g. asking for a boxed final answer.
        verifier: the process pool to check answers with; one shared pool by default.
    """

    metadata = {"render_modes": []}

    def __init__(self, tasks: TaskSource, system_prompt: str | None = None, verifier: VerifierPool | None = None):
        if not callable(tasks) and len(tasks) == 0:
            raise ValueError("MathEnv needs at least one task")
        self._tasks = tasks
        self.system_prompt = system_prompt
        self.verifier = verifier
        self.action_space = AssistantText()
        self.observation_space = Messages()
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list, dict]:
        super().reset(seed=seed)
        self.task = draw_task(self._tasks, self.np_random, options or {})
        opening = opening_messages(self.task, self.system_prompt)
        self._done = False
        return opening, {"tools": [], "task_id": self.task.id}

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        if not isinstance(action, str):
            raise TypeError(f"MathEnv actions are the assistant's text (str), got {type(action).__name__}")
        if self._done:
            raise RuntimeError("the episode has ended: call reset() before step()")
        self._done = True
        reward = (self.verifier or shared_pool()).score(str(self.task.answer), action)
        return [], reward, True, False, {"reward_breakdown": {"correct": reward}, "answer": str(self.task.answer)}

    def expert_actions(self) -> list[str]:
        return list(self.task.expert) or [f"The answer is $\\boxed{{{self.task.answer}}}$."]
