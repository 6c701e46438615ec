"""`chord-env bench eval`: what held-out evaluation costs, measured against raw vLLM in one run.

On one engine (SmolLM2-135M-Instruct on vLLM, greedy, `max_tokens` new tokens), over a stratified
subset of BFCL's non-live single-turn suite (`--limit` cases per category, seeded):
1. Wall time of `agents.evaluate.evaluate` end to end: rendering, generation in batches of
   `batch_size`, decoding and scoring with BFCL's checker. The full suite's time is extrapolated
   from it linearly (per case).
2. Its tokens/s (sampled tokens over that wall time) divided by the tokens/s of `vllm.LLM.generate`
   itself on exactly the prompts `evaluate` sends, in the same batches, with the same sampling
   parameters (`VLLMBackend`'s: greedy, the same stop ids, `logprobs=0`) (target >= 0.90). Greedy
   decoding makes both sides sample the same tokens, so the ratio is a ratio of times. Raw vLLM
   with all prompts in one call is reported too (the engine's best case).
3. Scoring checks/s: `check(text)` (Hermes decode + BFCL's AST checker) on the model's outputs and
   on ground-truth answers (which reach deeper into the checker), one process.
Timings are wall clock, best of `repeats` after a warm-up on a few prompts.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Sequence

from chord_env.agents.backend import Completion, SamplingParams
from chord_env.agents.evaluate import bfcl_suite, evaluate, stratified_subset
from chord_env.agents.vllm_backend import VLLMBackend
from chord_env.chat import ChatRenderer
from chord_env.envs import bfcl
from chord_env.models import cached_model_dir, prepare_model
from chord_env.parsing import format_hermes


class Counting:
    """A backend proxy that counts the tokens it returns."""

    def __init__(self, backend: VLLMBackend):
        self.backend, self.tokens = backend, 0

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        out = self.backend.generate(prompts, params)
        self.tokens += sum(len(c.token_ids) for cs in out for c in cs)
        return out


def _raw(engine: VLLMBackend, prompts: list[list[int]], params: SamplingParams, batch_size: int) -> tuple[float, int]:
    """Seconds and sampled tokens of `vllm.LLM.generate` on token prompts, `batch_size` per call."""
    from vllm.inputs import TokensPrompt

    sampling = engine._sampling_params(params)
    tokens, began = 0, time.perf_counter()
    for start in range(0, len(prompts), batch_size):
        batch = [TokensPrompt(prompt_token_ids=p) for p in prompts[start : start + batch_size]]
        tokens += sum(len(o.outputs[0].token_ids) for o in engine.llm.generate(batch, sampling, use_tqdm=False))
    return time.perf_counter() - began, tokens


def _checks_per_s(checks: list, texts: list[str], min_seconds: float = 1.0) -> float:
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < min_seconds:
        for check, text in zip(checks, texts):
            check(text)
        done += len(texts)
    return done / (time.perf_counter() - began)


def main(limit: int = 10, max_tokens: int = 128, batch_size: int = 64, repeats: int = 2, seed: int = 0) -> int:
    from transformers import AutoTokenizer

    model_dir = prepare_model("smollm2-135m-instruct", cached_model_dir("smollm2-135m-instruct", "fp32"), "fp32")
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(model_dir))
    everything = bfcl_suite(bfcl.non_live_categories())
    cases = stratified_subset(everything, limit, seed)
    max_model_len = 4096
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens,
                            stop_token_ids=renderer.stop_token_ids())
    began = time.perf_counter()
    engine = VLLMBackend(model_dir, max_model_len=max_model_len)
    start_seconds = time.perf_counter() - began
    try:
        prompts = [renderer.encode(c.messages, c.tools) for c in cases]
        fits = [len(p) <= max_model_len - max_tokens for p in prompts]
        cases = [c for c, ok in zip(cases, fits) if ok]
        prompts = [p for p, ok in zip(prompts, fits) if ok]
        engine.generate(prompts[:8], replace(params, max_tokens=8))  # warm-up
        runs = []
        for _ in range(repeats):
            counting = Counting(engine)
            t0 = time.perf_counter()
            results = evaluate(counting, renderer, cases, params, batch_size=batch_size, progress=False)
            runs.append((time.perf_counter() - t0, counting.tokens, results))
        wall, tokens, results = min(runs, key=lambda r: r[0])
        raw_seconds, raw_tokens = min((_raw(engine, prompts, params, batch_size) for _ in range(repeats)), key=lambda r: r[0])
        one_seconds, one_tokens = min((_raw(engine, prompts, params, len(prompts)) for _ in range(repeats)), key=lambda r: r[0])
    finally:
        engine.close()
    checks = [c.check for c in cases]
    model_rate = _checks_per_s(checks, [r.outputs[0] for r in results])
    truth = [format_hermes(bfcl.ground_truth_calls(bfcl_case)) for bfcl_case in _bfcl_cases(cases)]
    truth_rate = _checks_per_s(checks, truth)
    correct = sum(r.num_correct for r in results)
    rows = [
        ("engine start (s)", f"{start_seconds:.1f}", ""),
        ("cases (non-live, stratified)", f"{len(cases)} of {len(everything)}", ""),
        ("eval wall time (s)", f"{wall:.1f}", ""),
        ("full non-live suite, extrapolated (s)", f"{wall / len(cases) * len(everything):.0f}", ""),
        ("sampled tokens (eval / raw)", f"{tokens} / {raw_tokens}", "equal (greedy)"),
        ("raw LLM.generate tokens/s, same batches", f"{raw_tokens / raw_seconds:.0f}", ""),
        ("eval tokens/s", f"{tokens / wall:.0f}", ""),
        ("eval / raw", f"{tokens / wall / (raw_tokens / raw_seconds):.2f}", ">= 0.90"),
        ("raw LLM.generate tokens/s, one call", f"{one_tokens / one_seconds:.0f}", ""),
        ("scoring checks/s, model outputs", f"{model_rate:.0f}", ""),
        ("scoring checks/s, ground-truth answers", f"{truth_rate:.0f}", ""),
        ("accuracy on the subset (greedy)", f"{correct}/{len(cases)}", ""),
    ]
    print(f"\nSmolLM2-135M-Instruct ({model_dir}), vLLM max_model_len {max_model_len}, greedy, {max_tokens} new tokens, "
          f"batches of {batch_size}, best of {repeats}\n")
    print("| measurement | value | target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    return 0


def _bfcl_cases(cases) -> list[bfcl.BFCLCase]:
    by_id = {c.id: c for category in {c.category for c in cases} for c in bfcl.load_cases(category)}
    return [by_id[c.id] for c in cases]
