"""Gymnasium environments for LLM agents: multi-turn tool use, math, single-turn function calling."""

from chord_env.envs.function_call_env import FunctionCallEnv
from chord_env.envs.math_env import MathEnv
from chord_env.envs.rewards import Episode, Rubric, answer_match, default_rubric, format_ok
from chord_env.envs.task import Task
from chord_env.envs.tool_env import ToolEnv

__all__ = ["Episode", "FunctionCallEnv", "MathEnv", "Rubric", "Task", "ToolEnv", "answer_match", "default_rubric", "format_ok"]
