"""A task: the problem one episode poses, with its expected answer and an expert solution."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from chord_env.types import Message, ToolSpec


@dataclass
class Task:
    """One episode's problem.

    `prompt` is the user's request (or the full opening messages); `answer` the expected final
    answer (or, for function-calling tasks, the expected `ToolCall`s); `expert` the assistant turns
    (raw text, in the env's tool-call format) of a correct solution, used for scripted episodes and
    as SFT data; `tools` the tool specs offered when the task itself defines them (function-calling
    tasks; a ToolEnv offers its own executable tools); `info` free-form data for reward functions.
    """

    prompt: str | list[Message]
    answer: Any = None
    expert: list[str] = field(default_factory=list)
    id: str = ""
    tools: list[ToolSpec] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


TaskSource = Sequence[Task] | Callable[[np.random.Generator], Task]


def draw_task(tasks: TaskSource, rng: np.random.Generator, options: dict[str, Any]) -> Task:
    """The task for a reset: `options["task"]`, else `options["task_index"]` into a task list, else one
    drawn with `rng` (from the list, or from a procedural generator)."""
    if "task" in options:
        return options["task"]
    if callable(tasks):
        return tasks(rng)
    index = options.get("task_index")
    return tasks[int(rng.integers(len(tasks))) if index is None else index]


def opening_messages(task: Task, system_prompt: str | None) -> list[Message]:
    """The messages that open an episode: the system prompt, if any, then the task's prompt."""
    opening = list(task.prompt) if isinstance(task.prompt, list) else [Message("user", task.prompt)]
    return ([Message("system", system_prompt)] if system_prompt is not None else []) + opening
