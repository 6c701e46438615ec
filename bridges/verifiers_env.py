"""verifiers bridge: `load_environment(env_id)` hands a registered chord-env env to verifiers users.

It returns a `vf.MultiTurnEnv` (verifiers 0.1.10, the newest release that installs beside our pins:
docs/design.md, "Bridges") whose
- dataset is the env's tasks: each row's prompt is an episode's opening messages, and its `info`
  the reset seed that draws the task and the tool specs the episode offers (`info["oai_tools"]`,
  which verifiers sends to the model with every request of that rollout);
- multi-turn step is our env's `step()`: each rollout resets a fresh env with its row's seed, and
  `env_response` steps it with the model's turn (tool calls the server returned structured are
  written back in the env's tool-call format, `bridges/episodes.assistant_action`) and answers with
  the env's observation, each tool message carrying the id of the model's call it answers; the
  env's termination or truncation ends the rollout;
- rubric is the env's reward: one reward function returning the reward the env gave on its last
  step (`truncation_reward` if the rollout stopped before the episode ended, as chord-env's own
  runner scores a cut episode), and the env's `success` as a metric (weight 0).

verifiers is imported only when `load_environment` runs; install it with the `bridges` extra.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import chord_env
from chord_env.bridges.episodes import assistant_action, task_rows, tool_call_format
from chord_env.types import Message


def load_environment(env_id: str, num_examples: int = 100, seed: int = 0, truncation_reward: float = 0.0,
                     **env_kwargs: Any) -> Any:
    """A verifiers environment over `num_examples` tasks of `chord_env.make(env_id, **env_kwargs)`
    (reset seeds `seed`, `seed + 1`, ...)."""
    import verifiers as vf
    from datasets import Dataset

    rows = task_rows(env_id, num_examples, seed, **env_kwargs)
    dataset = Dataset.from_list([{"prompt": r.prompt, "info": json.dumps({"seed": r.seed, "oai_tools": r.tools})}
                                 for r in rows])  # info as JSON: the tools' schemas differ, Arrow would merge them

    class ChordEnv(vf.MultiTurnEnv):
        """One episode of the env per rollout: the env's step, observation and reward."""

        def __init__(self, **kwargs: Any):
            self.episodes: dict[str, Any] = {}
            super().__init__(**kwargs)

        async def setup_state(self, state: Any) -> Any:
            env = chord_env.make(env_id, **env_kwargs)
            env.reset(seed=int(state["info"]["seed"]))
            self.episodes[state["trajectory_id"]] = env
            state["chord_reward"], state["chord_success"] = truncation_reward, False
            return state

        async def env_response(self, messages: Any, state: Any, **kwargs: Any) -> list[dict[str, Any]]:
            env = self.episodes[state["trajectory_id"]]
            turn = messages[-1]
            observation, reward, terminated, truncated, info = env.step(assistant_action(turn, tool_call_format(env)))
            replies = answering_ids(observation, info.get("tool_calls", []), turn.get("tool_calls") or [])
            if terminated or truncated:
                state["chord_reward"], state["chord_success"] = float(reward), bool(info.get("success", False))
                state["final_env_response"] = replies
            return replies

        @vf.cleanup
        async def close_episode(self, state: Any) -> None:
            env = self.episodes.pop(state["trajectory_id"], None)
            if env is not None:
                env.close()

    async def env_reward(state: Any) -> float:
        return float(state["chord_reward"])

    async def success(state: Any) -> float:
        return float(state["chord_success"])

    env_reward.__name__ = env_id.replace("/", "_")
    rubric = vf.Rubric(funcs=[env_reward, success], weights=[1.0, 0.0])
    return ChordEnv(dataset=dataset, rubric=rubric, env_id=env_id, max_turns=-1)


def answering_ids(observation: Sequence[Message], env_calls: Sequence[dict[str, Any]],
                  model_calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The env's observation as OpenAI-format messages, each tool message carrying the id of the
    model's call it answers (the env names the calls it parses itself; the calls that ran are the
    model's, in order); a tool message that answers no call (a parse error, calls over budget) gets
    an empty id."""
    ids = {env["id"]: model.get("id") for env, model in zip(env_calls, model_calls)}
    replies = []
    for message in observation:
        reply = message.to_openai()
        if reply["role"] == "tool":
            reply["tool_call_id"] = ids.get(reply.get("tool_call_id")) or reply.get("tool_call_id") or ""
        replies.append(reply)
    return replies
