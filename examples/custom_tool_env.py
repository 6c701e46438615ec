"""A new tool environment in a few lines: a unit-conversion tool, tasks, a reward; registered and run."""

import chord_env
from chord_env.envs import Task, ToolEnv, Rubric, answer_match
from chord_env.parsing import format_hermes
from chord_env.tools import tool
from chord_env.types import ToolCall


@tool
def km_to_miles(km: float) -> float:
    """Convert kilometres to miles.

    Args:
        km: distance in kilometres.
    """
    return round(km * 0.621371, 3)


TASKS = [
    Task(prompt=f"How many miles is {km} km?", answer=round(km * 0.621371, 3),
         expert=[format_hermes([ToolCall("km_to_miles", {"km": km})]), f"That is {round(km * 0.621371, 3)} miles."])
    for km in (5, 10, 42.195)
]


def make_env() -> ToolEnv:
    return ToolEnv(tools=[km_to_miles], tasks=TASKS, rubric=Rubric({"answer": (1.0, answer_match)}))


if __name__ == "__main__":
    chord_env.register("Miles-v0", entry_point=f"{__name__}:make_env")
    env = chord_env.make("chord/Miles-v0")
    obs, info = env.reset(seed=0)
    for action in env.unwrapped.expert_actions():
        obs, reward, terminated, truncated, info = env.step(action)
    print(f"{env.unwrapped.task.prompt} -> reward {reward}")
