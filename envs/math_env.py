"""MathEnv: a single-turn Gymnasium environment whose reward is a math-verify check of the answer.

The observation is the problem as a user message (after an optional system prompt); the action is
the model's full answer (reasoning and all); the episode ends after that one step. Its rubric
(`math_rubric`) has one term, `correct`: 1.0 if math-verify finds the gold answer in the answer (a
`\\boxed{}` answer is preferred by math-verify's extraction, plain numbers work too), else 0.0;
`info["success"]` says it was 1.0, and `info["verdict"]` is the evaluation report's record of it
(`correct`, `error_type` "wrong_answer" or None, `gold`). Verification runs in a worker process
(`math_verify_pool`), so its timeout holds even when the env is stepped off the main thread.
"""

from __future__ import annotations

from chord_env.envs.base import ChatEnv
from chord_env.envs.math_verify_pool import VerifierPool, shared_pool
from chord_env.envs.rewards import Episode, Rubric
from chord_env.envs.task import TaskSource
from chord_env.parsing import ParseResult

WRONG_ANSWER = "wrong_answer"


def math_rubric(verifier: VerifierPool | None = None) -> Rubric:
    """One term, `correct`: math-verify's check of the final answer against the task's gold answer,
    in `verifier` (the process's shared pool by default)."""

    def correct(episode: Episode) -> float:
        return (verifier or shared_pool()).score(str(episode.task.answer), episode.final_answer or "")

    return Rubric({"correct": (1.0, correct)})


class MathEnv(ChatEnv):
    """One problem, one answer, a verified reward.

    Args:
        tasks: tasks whose `answer` is the gold answer as a string (or a generator of them).
        system_prompt: an optional system message, e.g. asking for a boxed final answer.
        verifier: the process pool to check answers with; one shared pool by default.
    """

    def __init__(self, tasks: TaskSource, system_prompt: str | None = None, verifier: VerifierPool | None = None):
        super().__init__(tasks, system_prompt)
        self.rubric = math_rubric(verifier)

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        self._begin_step(action)
        reward, info = self._score_turn(action, ParseResult([], action, None))
        gold = str(self.task.answer)
        verdict = {"correct": info["success"], "error_type": None if info["success"] else WRONG_ANSWER, "gold": gold}
        return [], reward, True, False, {**info, "answer": gold, "verdict": verdict}

    def expert_actions(self) -> list[str]:
        return list(self.task.expert) or [f"The answer is $\\boxed{{{self.task.answer}}}$."]
