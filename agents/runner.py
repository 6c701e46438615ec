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
not fit in `max_context` tokens ("context"), or anything on the env's side fails ("env_error"):
`truncation_reward`, with the reason in `Trajectory.info` ("detail" or "error").

Envs are not trusted. A failure anywhere on the env's side (making it, `reset`, `step`, `close`, a
malformed observation, a reward that is not a finite number, text the chat template cannot render)
ends that episode alone, never the rollout; an episode whose env fails before its prompt is encoded
has no tokens. Every string an env hands over (messages, info, reward names) passes `clean_text`,
so text that is not valid Unicode (a lone surrogate) is repaired before it is tokenized or written
(`write_jsonl`). Env text never yields control tokens (`ChatRenderer`), and a reply or prompt longer
in characters than the tokens left can cover ends the episode ("context") before it is tokenized,
its stored text cut to that length. Per-turn budgets on tool calls and tool time are the env's
(`ToolEnv`'s `max_calls_per_turn`, `max_tool_seconds_per_turn`).
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import gymnasium as gym
from tqdm import tqdm

from chord_env.agents.backend import Backend, SamplingParams
from chord_env.chat import ChatRenderer
from chord_env.types import Message, ToolSpec, Trajectory, Turn, clean_text, map_strings

MAX_ERROR_CHARS = 2000
TURN_INFO_KEYS = ("tool_calls", "tool_errors", "parse_error", "skipped_calls")


@dataclass(frozen=True)
class RolloutConfig:
    """How episodes are sampled and bounded (nested in the trainer's config as `rollout`)."""

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
    env: gym.Env | None
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


def _describe(error: BaseException) -> str:
    """An exception as one clean, bounded line of text for `Trajectory.info`."""
    text = clean_text("".join(traceback.format_exception_only(error)).strip())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "..."


def _messages(observation: Any, what: str) -> list[Message]:
    """An env's messages, checked and with their text made valid Unicode."""
    if not isinstance(observation, (list, tuple)) or not all(isinstance(m, Message) for m in observation):
        raise TypeError(f"the env's {what} is not a list of Message: {type(observation).__name__}")
    for m in observation:
        if not isinstance(m.content, str):
            raise TypeError(f"the env's {what} has a {m.role} message whose content is {type(m.content).__name__}, not str")
    return map_strings(list(observation), clean_text)


def _clip(messages: list[Message], chars: int) -> list[Message]:
    """`messages` with their contents cut to `chars` characters in all (what could have fit)."""
    out = []
    for m in messages:
        keep = m.content[: max(chars, 0)]
        chars -= len(keep)
        cut = len(m.content) - len(keep)
        out.append(dataclasses.replace(m, content=keep + (f"[... {cut} characters cut: no room in the context]" if cut else "")))
    return out


def _start(make_env: Callable[[], gym.Env], renderer: ChatRenderer, task_seed: int, sample: int, config: RolloutConfig) -> _Episode | Trajectory:
    """A new episode, or the trajectory of one that ended before its first turn (env failure, or a
    prompt that cannot fit)."""
    env = None
    try:
        env = make_env()
        observation, info = env.reset(seed=task_seed)
        if not isinstance(info, dict):
            raise TypeError(f"the env's reset info is not a dict: {type(info).__name__}")
        messages = _messages(observation, "reset observation")
        tools = map_strings(list(info.get("tools", [])), clean_text)
        if not all(isinstance(t, ToolSpec) for t in tools):
            raise TypeError("the env's reset info['tools'] is not a list of ToolSpec")
        task_id = clean_text(str(info.get("task_id", "")))
        ids = renderer.encode(messages, tools, max_tokens=config.max_context)
    except Exception as e:  # a broken env ends its episode, not the run
        return _empty(env, task_seed, sample, "env_error", config, error=_describe(e))
    if ids is None:
        chars = config.max_context * renderer.max_token_chars
        detail = f"the env's prompt is longer than the {config.max_context} tokens of max_context can cover ({chars} characters)"
        return _empty(env, task_seed, sample, "context", config, detail=detail, messages=_clip(messages, chars), task_id=task_id)
    return _Episode(env, task_seed, sample, tools, messages, ids, len(ids), task_id=task_id)


def _empty(env: gym.Env | None, task_seed: int, sample: int, truncation: str, config: RolloutConfig,
           messages: list[Message] | None = None, task_id: str = "", **reason: str) -> Trajectory:
    """The trajectory of an episode that ended before its prompt was encoded: no tokens."""
    ep = _Episode(env, task_seed, sample, [], messages or [], [], 0, task_id=task_id)
    return _finish(ep, config.truncation_reward, truncation, {}, **reason)


def _close(env: gym.Env | None) -> str | None:
    """Close an env; the error text if that fails (the episode's outcome stands)."""
    try:
        if env is not None:
            env.close()
    except Exception as e:
        return _describe(e)
    return None


def _finish(ep: _Episode, reward: float, truncation: str | None, info: dict[str, Any], **reason: str) -> Trajectory:
    """The episode's trajectory (its env closed); `reason` ("error" or "detail") says why the runner ended it."""
    breakdown = {clean_text(str(k)): float(v) for k, v in info.get("reward_breakdown", {}).items()}
    close_error = _close(ep.env)
    return Trajectory(
        token_ids=ep.token_ids,
        loss_mask=ep.loss_mask,
        logprobs=ep.logprobs,
        prompt_length=ep.prompt_length,
        reward=float(reward),
        success=bool(info.get("success", False)),
        reward_breakdown=breakdown,
        turns=ep.turns,
        messages=ep.messages,
        task_id=ep.task_id,
        group_id=str(ep.task_seed),
        truncation=truncation,
        info={"sample": ep.sample, "env_seconds": ep.env_seconds, **reason, **({"close_error": close_error} if close_error else {})},
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
    try:
        return _respond(ep, completion.finish_reason, text, turn, renderer, config)
    except Exception as e:  # a broken env ends its episode, not the run
        return _finish(ep, config.truncation_reward, "env_error", {}, error=_describe(e))


def _respond(ep: _Episode, finish_reason: str, text: str, turn: Turn, renderer: ChatRenderer, config: RolloutConfig) -> Trajectory | None:
    """Step the env with the model's text and append its reply; raises if the env's side fails."""
    began = time.perf_counter()
    try:
        observation, reward, terminated, truncated, info = ep.env.step(text)
    finally:
        ep.env_seconds += time.perf_counter() - began
    observation = _messages(observation, "observation")
    if not isinstance(info, dict):
        raise TypeError(f"the env's step info is not a dict: {type(info).__name__}")
    info = {k: map_strings(v, clean_text) for k, v in info.items() if k in (*TURN_INFO_KEYS, "truncation", "success", "reward_breakdown")}
    reward = float(reward)
    if not math.isfinite(reward):
        raise ValueError(f"the env returned a reward that is not finite: {reward}")
    turn.reward = reward
    turn.info.update({k: info[k] for k in TURN_INFO_KEYS if k in info})
    if terminated or truncated or finish_reason == "length":
        ep.messages.extend(observation)
        truncation = "length" if finish_reason == "length" and not terminated else None
        return _finish(ep, reward, truncation or (info.get("truncation") if truncated else None), info)
    room = config.max_context - len(ep.token_ids) - 1
    reply = renderer.encode_observation(ep.messages, observation, ep.tools, max_tokens=room)
    if reply is None:
        chars = max(room, 0) * renderer.max_token_chars
        ep.messages.extend(_clip(observation, chars))
        detail = f"the env's reply is longer than the {max(room, 0)} tokens left in max_context can cover ({chars} characters)"
        return _finish(ep, config.truncation_reward, "context", {}, detail=detail)
    ep.messages.extend(observation)
    if len(ep.token_ids) + len(reply) >= config.max_context:
        return _finish(ep, config.truncation_reward, "context", {})
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
            started = _start(make_env, renderer, *waiting.pop(), config)
            if isinstance(started, Trajectory):
                bar.update()
                yield started
            else:
                active.append(started)
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
