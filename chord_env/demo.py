"""`chord-env demo`: the main job. For now, one scripted expert episode of each built-in environment,
printed as a transcript with its reward; it grows into a short CHORD training run with evaluation
before and after once the trainer lands."""

from __future__ import annotations

import chord_env
from chord_env.registry import BUILTINS
from chord_env.types import Message


def _show(message: Message) -> str:
    calls = "".join(f"\n    -> {c.name}({c.arguments})" for c in message.tool_calls)
    return f"  [{message.role}] {message.content}{calls}"


def run_episode(env_id: str, seed: int) -> float:
    """Play the expert's turns in `env_id`, print the conversation, return the total reward."""
    env = chord_env.make(env_id)
    observation, info = env.reset(seed=seed)
    print(f"\n== {env_id}  (tools: {', '.join(t.name for t in info['tools']) or 'none'})")
    for message in observation:
        print(_show(message))
    total = 0.0
    for action in env.unwrapped.expert_actions():
        observation, reward, terminated, truncated, info = env.step(action)
        total += reward
        print(f"  [assistant] {action}")
        for message in observation:
            print(_show(message))
        if terminated or truncated:
            print(f"  reward {total:g}  breakdown {info.get('reward_breakdown')}")
            break
    env.close()
    return total


def main(seed: int = 0) -> int:
    rewards = {env_id: run_episode(env_id, seed) for env_id in BUILTINS}
    print("\n| env | reward |\n|---|---|")
    for env_id, reward in rewards.items():
        print(f"| {env_id} | {reward:g} |")
    return 0 if all(r > 0 for r in rewards.values()) else 1
