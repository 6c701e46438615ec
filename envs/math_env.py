"""MathEnv: a single-turn Gymnasium environment whose reward is a math-verify check of the answer.

The observation is the problem as a user message (after an optional system prompt); the action is
the model's full answer (reasoning and all); the episode ends after that one step with reward 1.0 if
math-verify finds the gold answer in it (a `\\boxed{}` answer is preferred by math-verify's
extraction, plain numbers work too) and 0.0 otherwise; `info["success"]` says it was 1.0.
Verification runs in a worker process (`math_verify_pool`), so its timeout holds even when the env
is stepped off the main thread.
"""

from __future__ import annotations

from chord_env.envs.base import ChatEnv
from chord_env.envs.math_verify_pool import VerifierPool, shared_pool
from chord_env.envs.task import TaskSource


class MathEnv(ChatEnv):
    """One problem, one answer, a verified reward.

    Args:
        tasks: tasks whose `answer` is the gold answer as a string (or a generator of them).
        system_prompt: an optional system message, e.g. asking for a boxed final answer.
        verifier: the process pool to check answers with; one shared pool by default.
    """

    def __init__(self, tasks: TaskSource, system_prompt: str | None = None, verifier: VerifierPool | None = None):
        super().__init__(tasks, system_prompt)
        self.verifier = verifier

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        self._begin_step(action)
        self._done = True
        reward = (self.verifier or shared_pool()).score(str(self.task.answer), action)
        info = {"reward_breakdown": {"correct": reward}, "answer": str(self.task.answer), "success": reward >= 1.0}
        return [], reward, True, False, info

    def expert_actions(self) -> list[str]:
        return list(self.task.expert) or [f"The answer is $\\boxed{{{self.task.answer}}}$."]
