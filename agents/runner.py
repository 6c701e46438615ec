"""The rollout runner: many environment episodes x n samples each, run to completion through a backend.

Episodes advance in rounds. Each round sends the current token ids of every active episode to the
backend in one batch (the engine batches them continuously), appends each sampled turn to its
episode, and steps that episode's env with the decoded text. An episode that ends frees its slot at
once and the next waiting episode takes it in the next round, so at most `concurrency` episodes are
in flight and no finished one waits for the others.

Token-in/token-out: an episode's ids are the prompt ids, then for each turn exactly the ids the
engine sampled (loss mask 1, with their behaviour logprobs), then the ids of the env's reply as the
chat template renders it after the model's end-of-turn token (`ChatRenderer.encode_observation`,
loss mask 0). The model's text is decoded only to step the env; it is never re-tokenized.

Every way an episode can stop has a defined outcome, and keeps everything sampled so far: the env
terminates or truncates it (the env's reward); the model's turn hits its token limit without an
end-of-turn token: the env is still stepped with the cut text and the episode ends there with the
env's reward for it ("length"; nothing can follow a turn that did not end); the env's reply would
not fit in `max_context` tokens ("context") or the env raises ("env_error"): `truncation_reward`.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import gymnasium as gym
from tqdm import tqdm

from chord_env.agents.backend import Backend, SamplingParams
from chord_env.chat import ChatRenderer
from chord_env.types import Message, ToolSpec, Trajectory, Turn


@dataclass
class RolloutConfig:
    """How episodes are sampled and bounded."""

    group_size: int = 8
    """n: samples per task (a GRPO group)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_turn_tokens: int = 256
    """Most tokens the model may sample in one turn."""
    max_context: int = 2048
    """Most tokens in a whole episode (prompt, turns and env replies)."""
    concurrency: int = 64
    """Most episodes in flight at once."""
    truncation_reward: float = 0.0
    """Reward of an episode cut short by the runner (length, context, env error)."""
    seed: int | None = None
    """If set, round r of a rollout samples with seed `seed + r` (reproducible on backends that honour
    per-request seeds); if None, the backend's own seeding applies."""


@dataclass
class _Episode:
    env: gym.Env
    task_seed: int
    sample: int
    tools: list[ToolSpec]
    messages: list[Message]
    token_ids: list[int]
    prompt_length: int
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    task_id: str = ""
    env_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.loss_mask = [0] * len(self.token_ids)
        self.logprobs = [0.0] * len(self.token_ids)


def _start(make_env: Callable[[], gym.Env], renderer: ChatRenderer, task_seed: int, sample: int) -> _Episode:
    env = make_env()
    observation, info = env.reset(seed=task_seed)
    tools = list(info.get("tools", []))
    ids = renderer.encode(observation, tools)
    return _Episode(env, task_seed, sample, tools, list(observation), ids, len(ids), task_id=str(info.get("task_id", "")))


def _finish(ep: _Episode, reward: float, truncation: str | None, info: dict[str, Any]) -> Trajectory:
    ep.env.close()
    return Trajectory(
        token_ids=ep.token_ids,
        loss_mask=ep.loss_mask,
        logprobs=ep.logprobs,
        prompt_length=ep.prompt_length,
        reward=float(reward),
        success=bool(info.get("success", False)),
        reward_breakdown={k: float(v) for k, v in info.get("reward_breakdown", {}).items()},
        turns=ep.turns,
        messages=ep.messages,
        task_id=ep.task_id,
        group_id=str(ep.task_seed),
        truncation=truncation,
        info={"sample": ep.sample, "env_seconds": ep.env_seconds, **({"error": info["error"]} if "error" in info else {})},
    )


def _advance(ep: _Episode, completion: Any, renderer: ChatRenderer, config: RolloutConfig) -> Trajectory | None:
    """Append one sampled turn and the env's reply; return the trajectory if the episode ended."""
    start = len(ep.token_ids)
    ep.token_ids += completion.token_ids
    ep.loss_mask += [1] * len(completion.token_ids)
    ep.logprobs += completion.logprobs
    text = renderer.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
    turn = Turn(start=start, end=len(ep.token_ids), info={"finish_reason": completion.finish_reason})
    ep.turns.append(turn)
    ep.messages.append(Message("assistant", text))
    began = time.perf_counter()
    try:
        observation, reward, terminated, truncated, info = ep.env.step(text)
    except Exception as e:  # a broken env ends its episode, not the run
        ep.env_seconds += time.perf_counter() - began
        return _finish(ep, config.truncation_reward, "env_error", {"error": "".join(traceback.format_exception_only(e)).strip()})
    ep.env_seconds += time.perf_counter() - began
    turn.reward = float(reward)
    turn.info.update({k: info[k] for k in ("tool_calls", "tool_errors", "parse_error") if k in info})
    if terminated or truncated or completion.finish_reason == "length":
        ep.messages.extend(observation)
        truncation = "length" if completion.finish_reason == "length" and not terminated else None
        return _finish(ep, reward, truncation or (info.get("truncation") if truncated else None), info)
    reply = renderer.encode_observation(ep.messages, observation, ep.tools)
    ep.messages.extend(observation)
    if len(ep.token_ids) + len(reply) >= config.max_context:
        return _finish(ep, config.truncation_reward, "context", info)
    ep.token_ids += reply
    ep.loss_mask += [0] * len(reply)
    ep.logprobs += [0.0] * len(reply)
    return None


def _generate(backend: Backend, active: list[_Episode], config: RolloutConfig, stop_token_ids: list[int], round_: int) -> list[Any]:
    """One completion per active episode. Each turn may sample `max_turn_tokens` or what is left of
    the context, whichever is less; episodes are batched by that budget (almost always one batch)."""
    budgets = [min(config.max_turn_tokens, config.max_context - len(ep.token_ids)) for ep in active]
    completions: list[Any] = [None] * len(active)
    for budget in sorted(set(budgets)):
        members = [i for i, b in enumerate(budgets) if b == budget]
        seed = None if config.seed is None else config.seed + round_
        params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_tokens=budget, stop_token_ids=list(stop_token_ids), seed=seed)
        for i, (completion,) in zip(members, backend.generate([active[i].token_ids for i in members], params)):
            completions[i] = completion
    return completions


def rollout(
    backend: Backend,
    make_env: Callable[[], gym.Env],
    renderer: ChatRenderer,
    task_seeds: list[int],
    config: RolloutConfig,
    stop_token_ids: list[int],
    progress: bool = True,
) -> Iterator[Trajectory]:
    """Run `config.group_size` episodes for each task seed; yield each trajectory as it finishes.

    Episode k of task seed s resets a fresh env with `seed=s`, so a group shares its task.
    """
    waiting = [(seed, k) for seed in task_seeds for k in range(config.group_size)]
    waiting.reverse()
    active: list[_Episode] = []
    bar = tqdm(total=len(waiting), desc="rollout", unit="episode", disable=not progress)
    sampled_tokens, began, round_ = 0, time.perf_counter(), 0
    while waiting or active:
        while waiting and len(active) < config.concurrency:
            active.append(_start(make_env, renderer, *waiting.pop()))
        for ep in [ep for ep in active if len(ep.token_ids) >= config.max_context]:
            active.remove(ep)
            bar.update()
            yield _finish(ep, config.truncation_reward, "context", {})
        still_active = []
        round_ += 1
        for ep, completion in zip(active, _generate(backend, active, config, stop_token_ids, round_)):
            sampled_tokens += len(completion.token_ids)
            done = _advance(ep, completion, renderer, config)
            if done is None:
                still_active.append(ep)
            else:
                bar.update()
                yield done
        active = still_active
        bar.set_postfix(tokens_per_s=f"{sampled_tokens / (time.perf_counter() - began):.0f}")
    bar.close()
