"""Held-out evaluation: run a policy backend over a suite of single-turn cases and score each output.

A suite is a list of `EvalCase`s: the opening messages, the tools offered, and a `check` that scores
one completion's text (BFCL: parse with the model's tool-call format, then BFCL's own checker; math:
math-verify against the gold answer). `evaluate` renders every prompt with the chat template
(`ChatRenderer.encode`, the ids the model would see in a rollout), generates in batches through the
`Backend` protocol, decodes each completion without re-tokenizing anything, and scores it. Bad
output (empty, truncated, huge, calls to functions never offered) is a failed case with its error
type; a prompt longer than `max_prompt_tokens` is not sent and fails as `prompt_too_long`.

BFCL is greedy (temperature 0, one sample) as in BFCL's own generation step; math takes `n`
samples per problem so that pass@k (Chen et al. 2021) can be estimated; with n = 1 it is greedy.

`--limit` takes `stratified_subset`: the same number of cases from every category, drawn with a
seeded generator and kept in the suite's order, so two models see the same cases.

BFCL multi-turn (`bfcl-multi-turn`) is a conversation, not one completion: its cases carry a task
of `envs.bfcl_multi_turn`, and `evaluate_multi_turn` plays them greedily through the rollout runner
(one episode per case); the env scores each with BFCL's multi-turn checker.

A model behind an OpenAI-compatible server (`main(..., backend="openai", base_url=...)`) is
evaluated one of two ways, by what we have of its tokenizer:
- with `tokenizer` (a folder holding the served model's tokenizer and chat template): exactly as a
  local model, token-in/token-out through `OpenAIBackend` (`/completions` with vLLM's token-id
  extensions), so the prompts are our template's ids and the numbers compare with a local run; every
  suite, multi-turn included;
- with the model's name only: through `chat_backend.ChatBackend` (`/chat/completions`, what any
  hosted API offers), `evaluate_chat`: the server renders the prompt with its own template and the
  reply's text (its tool calls written in the `parser` format) goes through the same checks. The
  prompt rendering is the server's, so the numbers measure the model as served rather than under our
  template, and `max_prompt_tokens` does not apply (the server enforces its window). Single-turn
  suites only: multi-turn play needs token ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from chord_env.agents.backend import Backend, SamplingParams, capabilities, open_backend
from chord_env.agents.chat_backend import ChatBackend
from chord_env.agents.runner import RolloutConfig, rollout
from chord_env.chat import ChatRenderer
from chord_env.envs import bfcl, bfcl_multi_turn
from chord_env.envs.math_heldout import MATH_SYSTEM_PROMPT, heldout_math_tasks
from chord_env.envs.math_verify_pool import VerifierPool
from chord_env.parsing import PARSERS
from chord_env.types import Message, ToolSpec

SUITES = ("bfcl-single", "bfcl-multi-turn", "math")
PROMPT_TOO_LONG = "prompt_too_long"


@dataclass
class EvalCase:
    """One prompt and how to score a completion of it. `check(text)` returns a JSON-ready dict with
    at least `correct` (bool) and `error_type` (None when correct)."""

    suite: str
    category: str
    id: str
    messages: list[Message]
    tools: list[ToolSpec]
    check: Callable[[str], dict[str, Any]]
    task: Any = None
    """Multi-turn cases: the env task the runner plays (`check` is then unused)."""


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


def bfcl_check(case: bfcl.BFCLCase, parser: str = "hermes") -> Callable[[str], dict[str, Any]]:
    """Scores a completion of a BFCL case: decode in `parser`'s format (Hermes as BFCL's own Hermes
    handler decodes it), then BFCL's rules."""

    def check(text: str) -> dict[str, Any]:
        parsed = bfcl.decode_hermes(text) if parser == "hermes" else PARSERS[parser](text)
        verdict = bfcl.score(case, parsed)
        calls = [{"name": c.name, "arguments": c.arguments} for c in parsed.calls]
        return {**verdict.__dict__, "calls": calls, "parse_error": parsed.error}

    return check


def bfcl_suite(categories: Sequence[str] | None = None, parser: str = "hermes") -> list[EvalCase]:
    """Every case of BFCL's single-turn categories (all of them by default)."""
    cases = []
    for category in categories or bfcl.single_turn_categories():
        for c in bfcl.load_cases(category):
            cases.append(EvalCase("bfcl-single", category, c.id, c.messages, c.tools, bfcl_check(c, parser)))
    return cases


def bfcl_multi_turn_suite(categories: Sequence[str] = bfcl_multi_turn.CATEGORIES) -> list[EvalCase]:
    """Every entry of BFCL's multi-turn categories, played as conversations by `evaluate_multi_turn`."""

    def check(text: str) -> dict[str, Any]:
        raise TypeError("a multi-turn case is scored by its env through evaluate_multi_turn")

    return [EvalCase("bfcl-multi-turn", t.info["category"], t.id, list(t.prompt), list(t.tools), check, t)
            for t in bfcl_multi_turn.tasks(tuple(categories))]


def evaluate_multi_turn(
    backend: Backend,
    renderer: ChatRenderer,
    cases: Sequence[EvalCase],
    max_turn_tokens: int = 512,
    max_context: int = 8192,
    progress: bool = True,
    parser: str = "hermes",
) -> list[CaseResult]:
    """Play each multi-turn case once, greedily, through the runner; the env's BFCL verdict scores it.

    An episode the runner cuts short (a turn at its token limit, the context full) fails with the
    runner's reason as its error type."""
    tasks = [c.task for c in cases]
    envs: list[bfcl_multi_turn.BFCLMultiTurnEnv] = []

    def make_env() -> bfcl_multi_turn.SeedAsTaskIndex:
        envs.append(bfcl_multi_turn.BFCLMultiTurnEnv(tasks, parser=parser))
        return bfcl_multi_turn.SeedAsTaskIndex(envs[-1])

    config = RolloutConfig(group_size=1, temperature=0.0, max_turn_tokens=max_turn_tokens, max_context=max_context)
    stops = renderer.stop_token_ids()
    played_out = rollout(backend, make_env, renderer, list(range(len(cases))), config, stops, progress=progress)
    trajectories = {t.group_id: t for t in played_out}
    played = {env.task.id: env for env in envs}
    results = []
    for i, case in enumerate(cases):
        traj, env = trajectories[str(i)], played[case.id]
        verdict = env.verdict or {"correct": False, "error_type": traj.truncation or "unfinished"}
        results.append(CaseResult(
            case.suite, case.category, case.id, [m.to_openai() for m in case.messages],
            outputs=[json.dumps([m.content for m in traj.messages if m.role == "assistant"], ensure_ascii=False)],
            verdicts=[{**verdict, "decoded": env.decoded, "truncation": traj.truncation}],
            prompt_tokens=traj.prompt_length,
        ))
    return results


def math_suite(n: int, verifier: VerifierPool) -> list[EvalCase]:
    """`n` held-out arithmetic problems (seeds from `math_heldout.EVAL_SEED_BASE` up)."""

    def check_for(answer: str) -> Callable[[str], dict[str, Any]]:
        def check(text: str) -> dict[str, Any]:
            correct = verifier.score(answer, text) > 0
            return {"correct": correct, "error_type": None if correct else "wrong_answer", "gold": answer}

        return check

    return [
        EvalCase("math", "arithmetic", t.id, [Message("system", MATH_SYSTEM_PROMPT), Message("user", t.prompt)], [],
                 check_for(str(t.answer)))
        for t in heldout_math_tasks(n)
    ]


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


def completion_text(tokenizer: Any, token_ids: list[int], end_of_turn: str) -> str:
    """The assistant's text for sampled ids, without the end-of-turn token that closed it."""
    text = tokenizer.decode(token_ids, skip_special_tokens=False)
    for end in (end_of_turn, tokenizer.eos_token or end_of_turn):
        if text.endswith(end):
            text = text[: -len(end)]
    return text


def evaluate(
    backend: Backend,
    renderer: ChatRenderer,
    cases: Sequence[EvalCase],
    params: SamplingParams,
    batch_size: int = 64,
    max_prompt_tokens: int | None = None,
    progress: bool = True,
) -> list[CaseResult]:
    """Generate `params.n` completions per case through `backend` and score every one."""
    tokenizer = renderer.tokenizer
    params = replace(params, stop_token_ids=params.stop_token_ids or renderer.stop_token_ids())
    results = []
    with tqdm(total=len(cases), desc="eval", unit="case", disable=not progress) as bar:
        for start in range(0, len(cases), batch_size):
            batch = cases[start : start + batch_size]
            prompts = [renderer.encode(c.messages, c.tools) for c in batch]
            fits = [max_prompt_tokens is None or len(p) <= max_prompt_tokens for p in prompts]
            sampled = iter(backend.generate([p for p, ok in zip(prompts, fits) if ok], params) if any(fits) else [])
            for case, prompt, ok in zip(batch, prompts, fits):
                result = CaseResult(case.suite, case.category, case.id, [m.to_openai() for m in case.messages],
                                    prompt_tokens=len(prompt))
                if ok:
                    result.outputs = [completion_text(tokenizer, c.token_ids, renderer.end_of_turn) for c in next(sampled)]
                    result.verdicts = [case.check(text) for text in result.outputs]
                else:
                    result.verdicts = [{"correct": False, "error_type": PROMPT_TOO_LONG}] * params.n
                results.append(result)
            bar.update(len(batch))
    return results


def evaluate_chat(
    client: ChatBackend,
    cases: Sequence[EvalCase],
    params: SamplingParams,
    parser: str = "hermes",
    batch_size: int = 64,
    progress: bool = True,
) -> list[CaseResult]:
    """`evaluate` through a chat-completions endpoint: `params.n` replies per case, each written as
    text with its tool calls in `parser`'s format and scored by the case's check; `prompt_tokens` is
    the server's count."""
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
    multi_turn = bfcl_multi_turn_suite() if "bfcl-multi-turn" in suites else []
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
                ] + (evaluate_multi_turn(engine, renderer, multi_turn, max_tokens, max_context, parser=parser)
                     if multi_turn else [])
            finally:
                engine.close()
    finally:
        verifier.close()
    return {k: str(v) for k, v in write_report(results, out).items()}
