"""`chord-env bench rollout`: what the runner and the backends cost, as ratios measured in one run.

On one engine, one model, the same prompts and the same sampling (temperature 1, `logprobs=0`:
the runner needs behaviour logprobs, so the raw baseline asks for them too):
1. Single turn: runner tokens/s over `chord/FunctionCall-v0` episodes divided by raw
   `vllm.LLM.generate` tokens/s replaying exactly the calls the runner made (target >= 0.90).
2. Three turns: the same over episodes of an env that answers every turn with a calculator result
   and ends after the third (so every episode has 3 model turns whatever the model says); the raw
   baseline replays the runner's three rounds of prompts (target >= 0.80). What the ratio charges
   to the runner: decoding, stepping envs, rendering observations, bookkeeping between rounds.
3. Backends: `VLLMBackend` vs `HFBackend` tokens/s on the same prompts.
4. Weight sync: seconds of the in-place sync and of a full engine restart.
Token counts are sampled tokens; every timing is wall-clock of the call (best of `repeats`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

import chord_env
from chord_env.agents.backend import SamplingParams
from chord_env.agents.hf_backend import HFBackend
from chord_env.agents.runner import RolloutConfig, rollout
from chord_env.agents.vllm_backend import VLLMBackend
from chord_env.agents.weight_sync import sync_seconds
from chord_env.chat import ChatRenderer
from chord_env.envs import Task
from chord_env.envs.base import ChatEnv
from chord_env.models import cached_model_dir, prepare_model
from chord_env.tools import calculator
from chord_env.types import Message


class ThreeTurns(ChatEnv):
    """A calculator conversation that lasts exactly three model turns, whatever the model writes."""

    def __init__(self):
        super().__init__([Task(prompt="What is 1234 * 3 - 7? Use the calculator.", tools=[calculator.spec])])

    def reset(self, *, seed=None, options=None):
        self.turns = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: str):
        self._begin_step(action)
        self.turns += 1
        if self.turns == 3:
            self._done = True
            return [], 0.0, True, False, {}
        result = Message("tool", str(1234 * self.turns), tool_call_id=f"call_{self.turns}", name="calculator")
        return [result], 0.0, False, False, {}


def _tokens(trajectories) -> int:
    return sum(sum(t.loss_mask) for t in trajectories)


class _Recorder:
    """Passes `generate` calls through to a backend and remembers each call's prompts and params."""

    def __init__(self, backend: VLLMBackend):
        self.backend, self.calls = backend, []

    def generate(self, prompts, params):
        self.calls.append(([list(p) for p in prompts], params))
        return self.backend.generate(prompts, params)


def _runner_rate(backend, make_env, renderer, tasks: int, group: int, max_tokens: int, stop_ids: list[int]) -> tuple[float, list]:
    """Runner tokens/s, and the generate calls it made (the raw baseline replays exactly those)."""
    recorder = _Recorder(backend)
    config = RolloutConfig(group_size=group, max_turn_tokens=max_tokens, max_context=2048, concurrency=tasks * group)
    began = time.perf_counter()
    trajectories = list(rollout(recorder, make_env, renderer, list(range(tasks)), config, stop_ids, progress=False))
    return _tokens(trajectories) / (time.perf_counter() - began), recorder.calls


def _raw_vllm_rate(engine: VLLMBackend, calls: list) -> float:
    """Tokens/s of `vllm.LLM.generate` itself replaying the runner's calls (same prompts, same
    sampling, asking for the sampled logprobs as the runner does)."""
    import vllm
    from vllm.inputs import TokensPrompt

    tokens, seconds = 0, 0.0
    for prompts, params in calls:
        sampling = vllm.SamplingParams(temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens,
                                       stop_token_ids=params.stop_token_ids, logprobs=0, detokenize=False)
        began = time.perf_counter()
        outputs = engine.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], sampling, use_tqdm=False)
        seconds += time.perf_counter() - began
        tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
    return tokens / seconds


def _backend_rate(backend, prompts: list[list[int]], params: SamplingParams) -> float:
    began = time.perf_counter()
    completions = backend.generate(prompts, params)
    return sum(len(c.token_ids) for (c,) in completions) / (time.perf_counter() - began)


def main(model: str = "smollm2-135m-instruct", tasks: int = 8, group: int = 8, max_tokens: int = 128, repeats: int = 2) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = prepare_model(model, cached_model_dir(model, "fp32"), "fp32")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    renderer = ChatRenderer(tokenizer)
    stop_ids = renderer.stop_token_ids()
    params = SamplingParams(temperature=1.0, max_tokens=max_tokens, stop_token_ids=stop_ids)
    rows: list[tuple[str, str, str]] = []
    with tqdm(total=5, desc="bench rollout", unit="part") as bar:
        started = time.perf_counter()
        vllm = VLLMBackend(model_dir, max_model_len=2048)
        rows.append(("engine start (s)", f"{time.perf_counter() - started:.1f}", ""))
        bar.update()
        one_turn = lambda: chord_env.make("chord/FunctionCall-v0")  # noqa: E731
        _runner_rate(vllm, one_turn, renderer, tasks, group, max_tokens, stop_ids)  # warm-up
        single, calls = max((_runner_rate(vllm, one_turn, renderer, tasks, group, max_tokens, stop_ids) for _ in range(repeats)), key=lambda r: r[0])
        raw = max(_raw_vllm_rate(vllm, calls) for _ in range(repeats))
        rows += [("raw LLM.generate tokens/s, single-turn prompts", f"{raw:.0f}", ""), ("runner tokens/s, single turn", f"{single:.0f}", ""),
                 ("runner / raw, single turn", f"{single / raw:.2f}", ">= 0.90")]
        bar.update()
        three, calls3 = max((_runner_rate(vllm, ThreeTurns, renderer, tasks, group, max_tokens, stop_ids) for _ in range(repeats)), key=lambda r: r[0])
        raw3 = max(_raw_vllm_rate(vllm, calls3) for _ in range(repeats))
        rows += [("raw LLM.generate tokens/s, the 3-turn rounds' prompts", f"{raw3:.0f}", ""), ("runner tokens/s, 3-turn episodes", f"{three:.0f}", ""),
                 ("runner / raw, 3-turn episodes", f"{three / raw3:.2f}", ">= 0.80")]
        bar.update()
        prompts = calls[0][0]
        policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        hf = max(_backend_rate(HFBackend(policy), prompts, params) for _ in range(max(1, repeats - 1)))
        rows += [("HFBackend tokens/s", f"{hf:.0f}", ""), ("vLLM / HF tokens/s", f"{raw / hf:.1f}x", "")]
        bar.update()
        inplace = min(sync_seconds(vllm, policy) for _ in range(repeats))
        vllm.sync = "restart"
        restart = sync_seconds(vllm, policy)
        vllm.close()
        rows += [("weight sync in place (s)", f"{inplace:.2f}", ""), ("weight sync by engine restart (s)", f"{restart:.1f}", ""),
                 ("restart / in place", f"{restart / inplace:.0f}x", "")]
        bar.update()
    print(f"\nmodel {model} ({Path(model_dir)}), {tasks} tasks x {group} samples, {max_tokens} new tokens a turn, temperature 1\n")
    print("| measurement | value | target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    return 0
