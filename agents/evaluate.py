"""Held-out evaluation: every suite is a registered env, played by the rollout runner; the env scores.

A suite is a list of `EvalCase`s: a task, the env that plays it (`env`, the class a registered id
makes: `chord/BFCL-v0`'s `BFCLEnv` for `bfcl-single`, `chord/ArithmeticHeldOut-v0`'s `MathEnv` for
`math`, `chord/BFCLMultiTurn-v0`'s `BFCLMultiTurnEnv` for `bfcl-multi-turn`), and the opening
messages and tools the env poses. `evaluate` plays every case `params.n` times through the rollout
runner (`agents/runner.py`: the prompt rendered with the chat template, token-in/token-out, the
reply decoded once to step the env) and reports the env's verdict from the step that ended the
episode (`info["verdict"]`, which its rubric computed). So a case's verdict is the env's reward, the one a training run on that env would
get: BFCL's checker for BFCL, math-verify for math. A reply the runner cut at `params.max_tokens`
is still scored; a prompt longer than `max_prompt_tokens` is not sent and fails as
`prompt_too_long`; an episode the runner ends (context full, env failure) fails with its reason.
`EvalCase.check(text)` is the same env stepped once with a given reply (chat endpoints, benches).

BFCL is greedy (temperature 0, one sample) as in BFCL's own generation step; math takes `n`
samples per problem so that pass@k (Chen et al. 2021) can be estimated; with n = 1 it is greedy.
The runner samples with the backend's own seeding (one seed per request would make a group's
samples equal).

`--limit` takes `stratified_subset`: the same number of cases from every category, drawn with a
seeded generator and kept in the suite's order, so two models see the same cases.

BFCL multi-turn (`bfcl-multi-turn`) is a conversation, not one completion: `evaluate_multi_turn`
plays each case once, greedily, through the same runner; the env scores it with BFCL's multi-turn
checker.

A model behind an OpenAI-compatible server (`main(..., backend="openai", base_url=...)`) is
evaluated one of two ways, by what we have of its tokenizer:
- with `tokenizer` (a folder holding the served model's tokenizer and chat template): exactly as a
  local model, token-in/token-out through `OpenAIBackend` (`/completions` with vLLM's token-id
  extensions), so the prompts are our template's ids and the numbers compare with a local run; every
  suite, multi-turn included;
- with the model's name only: through `chat_backend.ChatBackend` (`/chat/completions`, what any
  hosted API offers), `evaluate_chat`: the server renders the prompt with its own template and the
  reply's text (its tool calls written in the `parser` format) goes through `EvalCase.check`. The
  prompt rendering is the server's, so the numbers measure the model as served rather than under our
  template, and `max_prompt_tokens` does not apply (the server enforces its window). Single-turn
  suites only: multi-turn play needs token ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from chord_env.agents.backend import Backend, SamplingParams, capabilities, open_backend
from chord_env.agents.chat_backend import ChatBackend
from chord_env.agents.runner import RolloutConfig, rollout
from chord_env.chat import ChatRenderer
from chord_env.envs import bfcl, bfcl_multi_turn, bfcl_single_turn
from chord_env.envs.math_env import MathEnv
from chord_env.envs.math_heldout import MATH_SYSTEM_PROMPT, heldout_math_tasks
from chord_env.envs.math_verify_pool import VerifierPool
from chord_env.envs.task import Task, opening_messages
from chord_env.types import Message, ToolSpec, Trajectory

SUITES = ("bfcl-single", "bfcl-multi-turn", "math")
PROMPT_TOO_LONG = "prompt_too_long"
NO_CONTEXT_LIMIT = 2**62
"""The runner's context bound for single-turn play: none of its own (the backend's window applies)."""


@dataclass
class EvalCase:
    """One task of a suite and the env that plays and scores it."""

    suite: str
    category: str
    id: str
    messages: list[Message]
    """The opening messages the env poses (what the model is prompted with)."""
    tools: list[ToolSpec]
    task: Task
    env: Callable[[], gym.Env]
    """Makes an env that plays `task` when reset with `options={"task": task}`."""

    def check(self, text: str) -> dict[str, Any]:
        """The env's verdict on `text` as the whole reply: a fresh env, reset on the task, stepped once
        (single-turn suites). A JSON-ready dict with at least `correct` and `error_type`."""
        env = self.env()
        try:
            env.reset(options={"task": self.task})
            *_, info = env.step(text)
        finally:
            env.close()
        return info["verdict"]


@dataclass
class CaseResult:
    """A case's outputs and their verdicts (one per sample), as written to the per-case JSON."""

    suite: str
    category: str
    id: str
    prompt: list[dict[str, Any]]
    outputs: list[str] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0

    @property
    def num_correct(self) -> int:
        return sum(bool(v["correct"]) for v in self.verdicts)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "num_correct": self.num_correct}


def _case(suite: str, category: str, task: Task, env: Callable[[], gym.Env], system_prompt: str | None = None) -> EvalCase:
    return EvalCase(suite, category, task.id, opening_messages(task, system_prompt), list(task.tools), task, env)


def bfcl_suite(categories: Sequence[str] | None = None, parser: str = "hermes") -> list[EvalCase]:
    """Every case of BFCL's single-turn categories (all of them by default), each played in a
    `BFCLEnv` (`chord/BFCL-v0`) reading `parser`'s format."""
    tasks = bfcl_single_turn.tasks(categories or bfcl.single_turn_categories())
    return [_case("bfcl-single", t.info["category"], t, partial(bfcl_single_turn.BFCLEnv, [t], parser=parser)) for t in tasks]


def bfcl_multi_turn_suite(categories: Sequence[str] = bfcl_multi_turn.CATEGORIES, parser: str = "hermes") -> list[EvalCase]:
    """Every entry of BFCL's multi-turn categories, each played as a conversation in a `BFCLMultiTurnEnv`."""
    return [_case("bfcl-multi-turn", t.info["category"], t, partial(bfcl_multi_turn.BFCLMultiTurnEnv, [t], parser=parser))
            for t in bfcl_multi_turn.tasks(tuple(categories))]


def math_suite(n: int, verifier: VerifierPool) -> list[EvalCase]:
    """`n` held-out arithmetic problems (seeds from `math_heldout.EVAL_SEED_BASE` up), each played in
    the `MathEnv` of `chord/ArithmeticHeldOut-v0`, checked in `verifier`."""
    return [_case("math", "arithmetic", t, partial(MathEnv, [t], system_prompt=MATH_SYSTEM_PROMPT, verifier=verifier),
                  MATH_SYSTEM_PROMPT) for t in heldout_math_tasks(n)]


class _CaseEnv(gym.Env):
    """The runner's env: `reset(seed=i)` plays case i in a fresh env of its own. Every episode is kept
    in `played[(i, texts)]` (texts: the replies stepped) as (the case's env, the info of the step that
    ended it, or None while it has not ended)."""

    metadata = {"render_modes": []}

    def __init__(self, cases: Sequence[EvalCase], played: dict[tuple[int, tuple[str, ...]], tuple[gym.Env, dict | None]]):
        self.cases, self.played, self.env = cases, played, None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list, dict]:
        self.index, self.texts = seed, ()
        self.env = self.cases[seed].env()
        return self.env.reset(options={"task": self.cases[seed].task})

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.texts += (action,)
        self.played[(self.index, self.texts)] = (self.env, info if terminated or truncated else None)
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def _play(backend: Backend, renderer: ChatRenderer, cases: Sequence[EvalCase], config: RolloutConfig,
          stop_token_ids: list[int], progress: bool) -> list[list[tuple[Trajectory, gym.Env | None, dict | None]]]:
    """Play `config.group_size` episodes of every case through the runner: per case, per sample, the
    trajectory, the case's env after it (None if it was never stepped) and the info of the step that
    ended it (None if the runner ended it)."""
    played: dict[tuple[int, tuple[str, ...]], tuple[gym.Env, dict | None]] = {}
    episodes: list[list[tuple[Trajectory, gym.Env | None, dict | None]]] = [[] for _ in cases]
    for t in rollout(backend, lambda: _CaseEnv(cases, played), renderer, list(range(len(cases))), config, stop_token_ids,
                     progress=progress):
        texts = tuple(m.content for m in t.messages if m.role == "assistant")
        env, final = played.get((int(t.group_id), texts), (None, None))
        episodes[int(t.group_id)].append((t, env, final))
    for samples in episodes:
        samples.sort(key=lambda e: e[0].info["sample"])
    return episodes


def _unfinished(trajectory: Trajectory) -> dict[str, Any]:
    return {"correct": False, "error_type": trajectory.truncation or "unfinished"}


def evaluate(
    backend: Backend,
    renderer: ChatRenderer,
    cases: Sequence[EvalCase],
    params: SamplingParams,
    batch_size: int = 64,
    max_prompt_tokens: int | None = None,
    progress: bool = True,
) -> list[CaseResult]:
    """Play `params.n` one-turn episodes of every single-turn case through the runner (`batch_size`
    in flight), with `params`' temperature, top-p and `max_tokens`; each reply's verdict is its env's."""
    results = [CaseResult(c.suite, c.category, c.id, [m.to_openai() for m in c.messages]) for c in cases]
    playable = list(range(len(cases)))
    if max_prompt_tokens is not None:
        for i, case in enumerate(cases):
            results[i].prompt_tokens = len(renderer.encode(case.messages, case.tools))
        playable = [i for i in playable if results[i].prompt_tokens <= max_prompt_tokens]
        for i in set(range(len(cases))) - set(playable):
            results[i].verdicts = [{"correct": False, "error_type": PROMPT_TOO_LONG}] * params.n
    limit = NO_CONTEXT_LIMIT if max_prompt_tokens is None else max_prompt_tokens
    config = RolloutConfig(group_size=params.n, temperature=params.temperature, top_p=params.top_p,
                           max_turn_tokens=params.max_tokens, max_context=limit + params.max_tokens, concurrency=batch_size)
    stops = params.stop_token_ids or renderer.stop_token_ids()
    for i, samples in zip(playable, _play(backend, renderer, [cases[i] for i in playable], config, stops, progress)):
        results[i].prompt_tokens = samples[0][0].prompt_length
        for t, _, final in samples:
            replies = [m.content for m in t.messages if m.role == "assistant"]
            results[i].outputs.append(replies[-1] if replies else "")
            results[i].verdicts.append(final["verdict"] if final is not None else _unfinished(t))
    return results


def evaluate_multi_turn(
    backend: Backend,
    renderer: ChatRenderer,
    cases: Sequence[EvalCase],
    max_turn_tokens: int = 512,
    max_context: int = 8192,
    progress: bool = True,
) -> list[CaseResult]:
    """Play each multi-turn case once, greedily, through the runner; the env's BFCL verdict scores it.

    An episode the runner cuts short (a turn at its token limit, the context full) fails with the
    runner's reason as its error type."""
    config = RolloutConfig(group_size=1, temperature=0.0, max_turn_tokens=max_turn_tokens, max_context=max_context)
    results = []
    for case, [(t, env, final)] in zip(cases, _play(backend, renderer, cases, config, renderer.stop_token_ids(), progress)):
        verdict = final["verdict"] if final is not None else _unfinished(t)
        decoded = env.decoded if env is not None else []
        results.append(CaseResult(
            case.suite, case.category, case.id, [m.to_openai() for m in case.messages],
            outputs=[json.dumps([m.content for m in t.messages if m.role == "assistant"], ensure_ascii=False)],
            verdicts=[{**verdict, "decoded": decoded, "truncation": t.truncation}],
            prompt_tokens=t.prompt_length,
        ))
    return results


def stratified_subset(cases: Sequence[EvalCase], per_category: int, seed: int = 0) -> list[EvalCase]:
    """At most `per_category` cases of each (suite, category), drawn with `seed`, in suite order."""
    rng = np.random.default_rng(seed)
    by_category: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(cases):
        by_category.setdefault((c.suite, c.category), []).append(i)
    keep: set[int] = set()
    for indices in by_category.values():
        chosen = rng.choice(len(indices), size=min(per_category, len(indices)), replace=False)
        keep.update(indices[int(j)] for j in chosen)
    return [c for i, c in enumerate(cases) if i in keep]


def evaluate_chat(
    client: ChatBackend,
    cases: Sequence[EvalCase],
    params: SamplingParams,
    parser: str = "hermes",
    batch_size: int = 64,
    progress: bool = True,
) -> list[CaseResult]:
    """`evaluate` through a chat-completions endpoint: `params.n` replies per case, each written as
    text with its tool calls in `parser`'s format and scored by `EvalCase.check` (the case's env);
    `prompt_tokens` is the server's count."""
    results = []
    with tqdm(total=len(cases), desc="eval", unit="case", disable=not progress) as bar:
        for start in range(0, len(cases), batch_size):
            batch = cases[start : start + batch_size]
            for case, reply in zip(batch, client.chat([(c.messages, c.tools) for c in batch], params, parser)):
                results.append(CaseResult(case.suite, case.category, case.id, [m.to_openai() for m in case.messages],
                                          outputs=reply.texts, verdicts=[case.check(text) for text in reply.texts],
                                          prompt_tokens=reply.prompt_tokens))
            bar.update(len(batch))
    return results


def model_names(model_dirs: Sequence[str]) -> list[str]:
    """Short, distinct names for model folders or served names (their base names, numbered where they clash)."""
    names = [Path(d.rstrip("/")).name or "model" for d in model_dirs]
    return [f"{n}-{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def main(
    model_dirs: Sequence[str],
    suites: Sequence[str],
    out: str,
    limit: int | None = None,
    seed: int = 0,
    parser: str = "hermes",
    math_problems: int = 200,
    math_samples: int = 1,
    math_temperature: float = 0.8,
    max_tokens: int = 512,
    max_prompt_tokens: int | None = None,
    max_context: int = 8192,
    backend_factory: Callable[[str], Backend] | None = None,
    names: Sequence[str] | None = None,
    backend: str = "auto",
    base_url: str | None = None,
    api_key: str | None = None,
    tokenizer: str | None = None,
) -> dict[str, Any]:
    """`chord-env eval`: every model over every suite; writes the report to `out`. Models are named
    after their folders unless `names` are given. The default backend is `open_backend(backend)`,
    with a `max_context`-token window when multi-turn BFCL runs (its prompts alone are 2.4k-5.4k
    tokens). With a `remote` backend ("openai"), `model_dirs` are the names the server at `base_url`
    serves, prompted through `tokenizer` where given, else through its chat endpoint (module
    docstring); `api_key` is sent as a bearer token."""
    from transformers import AutoTokenizer

    from chord_env.report import write_report

    unknown = set(suites) - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suites {sorted(unknown)}; choose from {SUITES}")
    remote = backend != "auto" and capabilities(backend).remote
    if remote != (base_url is not None):
        raise ValueError(f"backend {backend!r} " + ("needs a base URL" if remote else "runs a model folder and takes no base URL (a server needs a remote backend, e.g. 'openai')"))
    chat = remote and tokenizer is None and backend_factory is None
    if chat and "bfcl-multi-turn" in suites:
        raise ValueError("bfcl-multi-turn plays token ids through the runner: give the served model's tokenizer "
                         "folder (--tokenizer DIR) to evaluate it on a server, or use a local backend")
    verifier = VerifierPool(processes=1)
    plans: list[tuple[list[EvalCase], SamplingParams]] = []
    if "bfcl-single" in suites:
        plans.append((bfcl_suite(parser=parser), SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=seed)))
    if "math" in suites:
        temperature = math_temperature if math_samples > 1 else 0.0
        params = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed, n=math_samples)
        plans.append((math_suite(math_problems, verifier), params))
    multi_turn = bfcl_multi_turn_suite(parser=parser) if "bfcl-multi-turn" in suites else []
    if limit is not None:
        plans = [(stratified_subset(cases, limit, seed), params) for cases, params in plans]
        multi_turn = stratified_subset(multi_turn, limit, seed)
    if backend_factory is None:
        window = {"max_model_len": max_context} if multi_turn else {}

        def backend_factory(model: str) -> Backend:
            if remote:
                return open_backend(base_url, backend, model=model, api_key=api_key, **window)
            return open_backend(model, backend, **window)

    results: dict[str, list[CaseResult]] = {}
    try:
        for name, model_dir in zip(names or model_names(model_dirs), model_dirs):
            if chat:
                with ChatBackend(base_url, model_dir, api_key=api_key) as client:
                    results[name] = [r for cases, params in plans for r in evaluate_chat(client, cases, params, parser)]
                continue
            renderer = ChatRenderer(AutoTokenizer.from_pretrained(tokenizer or model_dir))
            engine = backend_factory(model_dir)
            try:
                results[name] = [
                    r for cases, params in plans
                    for r in evaluate(engine, renderer, cases, params, max_prompt_tokens=max_prompt_tokens)
                ] + (evaluate_multi_turn(engine, renderer, multi_turn, max_tokens, max_context) if multi_turn else [])
            finally:
                engine.close()
    finally:
        verifier.close()
    return {k: str(v) for k, v in write_report(results, out).items()}
