"""`chord-env bench trainer`: our GRPO update against TRL's GRPOTrainer doing the same update, in one run.

What is timed is one optimizer step on a batch that is already built (no generation): forward, loss,
backward, gradient clipping, AdamW step, zero_grad. Both sides get the SAME update:
- the same weights: one prepared model folder (`chord-env prepare-model`; SmolLM2-135M in fp32 by
  default, `tiny-random` for a quick run), loaded fp32 in each side's process;
- the same batch: B sequences of P prompt + C completion tokens, ids drawn from a seeded generator,
  every completion token carries loss, fixed non-zero advantages (alternating signs, |A| from 0.5 to 1.5);
- the same loss: the PPO-clipped GRPO surrogate with eps 0.2 on both sides, no KL (TRL beta = 0), as a
  token mean over all completion tokens of the batch, old logprobs = the current ones detached (one
  optimizer step per batch, TRL's own shortcut when num_iterations == 1). Our dual clip is turned off
  (TRL has none; with ratio == 1 it would not fire anyway). TRL's `loss_type="dapo"` is the one that
  equals our token mean: it divides the masked token-loss sum by `num_items_in_batch`, the completion
  tokens of the whole generation batch, so it stays a batch-wide token mean under gradient
  accumulation as ours does ("bnpo" is the same for one micro-batch but averages micro-batch means);
- the same optimizer: ours, `train.make_optimizer` (fused torch AdamW, lr 1e-6, betas (0.9, 0.999),
  weight decay 0.01 on every parameter; fused AdamW is also TRL's default, `adamw_torch_fused`), handed
  to TRL as `optimizers=(optimizer, None)`; gradient norm clipped to 1.0 on both sides;
- the same precision: fp32 on CPU; on CUDA, bf16 autocast over fp32 weights (ours: `dtype="auto"`;
  TRL: `bf16=True`, its accelerator's autocast). Gradient checkpointing off on both sides unless
  `--gradient-checkpointing` (TRL's own default is on), then `gradient_checkpointing_enable()` on both.

Ours: `chord_env.trainer.train.update(model, optimizer, rl, [], mu=0, config, pad_id)`, packing
included. TRL (1.16): a `trl.GRPOTrainer` built on the model with a zero reward function, a tiny
dataset and our AdamW (`optimizers=(optimizer, None)`); what is timed is the body of
`Trainer.training_step` without `_prepare_inputs` (which would generate): under
`trainer.compute_loss_context_manager()`, `trainer.compute_loss(model, inputs)` with `inputs` as
`_generate_and_score_completions` returns them (prompt_ids, prompt_mask, completion_ids,
completion_mask, advantages, num_items_in_batch; no old_per_token_logps, as TRL leaves them out when
num_iterations == 1), then `trainer.accelerator.backward(loss)`, `clip_grad_norm_`, `optimizer.step()`,
`optimizer.zero_grad()`. `trainer.current_gradient_accumulation_steps` is set to 1, as its training
loop would for one micro-batch per step. TRL patches the model with its fused LM head
(`add_fused_lm_head`), as GRPOTrainer does. Each side reports the loss and the gradient norm of its
first update: on the same weights and batch they must agree (the evidence that the update is the same).

Where the sides differ: without Triton (CPU) TRL's fused head projects every position of the batch,
prompt included (B x (P + C - 1) rows, vocabulary tiles of 32,768 folded by torch ops), and masks
afterwards; ours projects only the B x C loss positions (`logprobs.token_logprobs`). On CUDA, TRL's
Triton path projects only the valid positions too.

Each side runs in its own spawned process (memory is per process and the imports do not mix); both
are loaded first, then updates alternate between them (ours, TRL, TRL, ours, ...) so that both see the
same machine load. Throughput = B * (P + C) tokens (every token of the batch, prompt and completion,
counted the same for both) / update seconds, best of `repeats` after `warmup` untimed updates; the
median and worst are printed as the spread. Memory: peak resident set size of each process during its
updates (sampled every 5 ms by a thread) and its rise over the RSS measured just before the first
update (model, trainer and batch loaded); on CUDA also `torch.cuda.max_memory_allocated`.


Then our update's variants, in one process taking turns (`run_variants`): with and without
`share_prefix` (each GRPO group's prompt once) and with and without bf16 autocast over the fp32 master
weights, on a batch whose groups share their prompt (`group_size`), each reported with its ratio to the
plain fp32 update measured in the same run. `python -m chord_env.bench.trainer MODEL_DIR [B P C
repeats]` prints that table alone (no TRL needed).

With `--ranks N` (`run_ranks`), instead: our update of one global batch by one process and by N ranks
under torchrun (`trainer/distributed.py`: DDP by default, or FSDP2), each rank running its share of the
micro-batches (the batch is cut into 2N micro-batches, the same cut for both runs), gradients reduced
over the ranks. Throughput = global batch tokens / update seconds, best of `repeats`; the N-rank time is
rank 0's after a barrier, i.e. the slowest rank's. Each run is its own process tree (one process, then
torchrun on loopback) loading the same model folder; the single process uses torch's default threads,
the ranks one thread each (torchrun's OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from chord_env.trainer import distributed
from chord_env.agents.runner import RolloutConfig
from chord_env.trainer.batching import Sequence
from chord_env.trainer.config import TrainConfig
from chord_env.trainer.train import make_optimizer, update

SIDES = ("ours", "trl")
INSTALL_HINT = 'trl is not installed: run `pip install -e ".[bench]"` (TRL 1.16.0) to benchmark against it'


@dataclass(frozen=True)
class BenchSpec:
    """The update both sides perform."""

    model_dir: str
    """a prepared model folder (loaded fp32)"""
    batch: int = 8
    """B, sequences per update"""
    prompt_tokens: int = 128
    """P, prompt tokens per sequence (no loss)"""
    completion_tokens: int = 128
    """C, completion tokens per sequence (all carry loss)"""
    lr: float = 1e-6
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eps: float = 0.2
    """PPO clip, both sides of the ratio"""
    gradient_checkpointing: bool = False
    seed: int = 0
    group_size: int = 1
    """GRPO group: each run of this many consecutive sequences shares one prompt (1: all prompts differ)"""

    @property
    def tokens(self) -> int:
        return self.batch * (self.prompt_tokens + self.completion_tokens)


@dataclass
class SideResult:
    """One side's measurements: update seconds (warm-up excluded), first-update loss and grad norm, memory."""

    seconds: list[float] = field(default_factory=list)
    first_loss: float = float("nan")
    first_grad_norm: float = float("nan")
    memory: dict[str, float] = field(default_factory=dict)

    def tokens_per_s(self, tokens: int) -> tuple[float, float, float]:
        """(best, median, worst) tokens per second."""
        return tokens / min(self.seconds), tokens / statistics.median(self.seconds), tokens / max(self.seconds)


def make_batch(spec: BenchSpec, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prompt_ids [B, P], completion_ids [B, C], advantages [B]), seeded."""
    generator = torch.Generator().manual_seed(spec.seed)
    ids = torch.randint(0, vocab_size, (spec.batch, spec.prompt_tokens + spec.completion_tokens), generator=generator)
    signs = torch.arange(spec.batch) % 2 * 2.0 - 1.0
    advantages = signs * torch.linspace(0.5, 1.5, spec.batch)  # -0.5, +0.64, ..., never 0
    first_of_group = torch.arange(spec.batch) // spec.group_size * spec.group_size
    return ids[first_of_group, : spec.prompt_tokens], ids[:, spec.prompt_tokens :], advantages


def train_config(spec: BenchSpec) -> TrainConfig:
    """Our config for the bench update (also the source of both sides' optimizer)."""
    return TrainConfig(
        model=spec.model_dir, lr=spec.lr, betas=(0.9, 0.999), weight_decay=spec.weight_decay, grad_clip=spec.grad_clip,
        eps_low=spec.eps, eps_high=spec.eps, dual_clip_c=None, kl_coef=0.0, aggregation="token-mean", tis_cap=None,
        rollout=RolloutConfig(max_turn_tokens=spec.completion_tokens, max_context=spec.prompt_tokens + spec.completion_tokens),
        micro_batch_tokens=spec.tokens, dtype="auto", gradient_checkpointing=spec.gradient_checkpointing,
    )


def our_update(model: nn.Module, spec: BenchSpec, pad_id: int) -> Callable[[], tuple[float, float]]:
    """A closure doing one of our updates on the bench batch; returns (loss, grad norm before clipping)."""
    config = train_config(spec)
    prompt_ids, completion_ids, advantages = make_batch(spec, model.config.vocab_size)
    rl = [
        Sequence(p + c, [0] * len(p) + [1] * len(c), [0.0] * (len(p) + len(c)), a)
        for p, c, a in zip(prompt_ids.tolist(), completion_ids.tolist(), advantages.tolist())
    ]
    optimizer = make_optimizer(model, config)

    def step() -> tuple[float, float]:
        metrics = update(model, optimizer, rl, [], 0.0, config, pad_id)
        return metrics["loss/rl"], metrics["grad/norm"]

    return step


VARIANTS = (("plain, fp32", False, "fp32"), ("share_prefix, fp32", True, "fp32"),
            ("plain, bf16 autocast", False, "bf16"), ("share_prefix, bf16 autocast", True, "bf16"))
"""Our update's variants: (name, share_prefix, dtype); the first is the baseline of the ratios."""


def variant_updates(model: nn.Module, spec: BenchSpec, pad_id: int) -> dict[str, Callable[[], tuple[float, float]]]:
    """One closure per variant, each doing one of our updates on the bench batch (one shared optimizer)."""
    prompt_ids, completion_ids, advantages = make_batch(spec, model.config.vocab_size)
    rl = [
        Sequence(p + c, [0] * len(p) + [1] * len(c), [0.0] * (len(p) + len(c)), a)
        for p, c, a in zip(prompt_ids.tolist(), completion_ids.tolist(), advantages.tolist())
    ]
    optimizer = make_optimizer(model, train_config(spec))
    steps = {}
    for name, share, dtype in VARIANTS:
        config = dataclasses.replace(train_config(spec), share_prefix=share, dtype=dtype)

        def step(config=config) -> tuple[float, float]:
            metrics = update(model, optimizer, rl, [], 0.0, config, pad_id)
            return metrics["loss/rl"], metrics["grad/norm"]

        steps[name] = step
    return steps


def run_variants(spec: BenchSpec, repeats: int = 3, warmup: int = 1) -> dict[str, SideResult]:
    """Our update with and without share_prefix and bf16 autocast, in this process, the variants taking
    turns (rotated each round) so that all see the same machine load; the model loads once (weights
    move by lr each update, which does not change the cost)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(spec.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)
    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=torch.float32).to(device)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    steps = variant_updates(model, spec, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    names = list(steps)
    results = {name: SideResult() for name in names}
    with tqdm(total=(warmup + repeats) * len(names), desc="bench variants", unit="update") as bar:
        for i in range(warmup + repeats):
            for name in names[i % len(names):] + names[: i % len(names)]:
                start = time.perf_counter()
                loss, grad_norm = steps[name]()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - start
                if i == 0:
                    results[name].first_loss, results[name].first_grad_norm = loss, grad_norm
                if i >= warmup:
                    results[name].seconds.append(elapsed)
                bar.update()
    return results


def format_variants(spec: BenchSpec, results: dict[str, SideResult], model_name: str) -> str:
    """Markdown: update tokens/s of each variant and its ratio to the first (plain fp32), same process."""
    base_best, base_med, _ = results[VARIANTS[0][0]].tokens_per_s(spec.tokens)
    rows = []
    for name, r in results.items():
        best, med, _ = r.tokens_per_s(spec.tokens)
        rows.append(f"| {name} | {best:,.1f} | {med:,.1f} | **{best / base_best:.2f}x** | {med / base_med:.2f}x | {r.first_loss:.6f} |")
    return "\n".join([
        f"our update's variants on {model_name}: batch {spec.batch} in groups of {spec.group_size} sharing a "
        f"{spec.prompt_tokens}-token prompt, {spec.completion_tokens} completion tokens each ({spec.tokens} tokens per update), "
        f"{len(next(iter(results.values())).seconds)} timed updates each after warm-up, taking turns in one process; "
        f"threads {torch.get_num_threads()}",
        "",
        "| variant | update tokens/s, best | median | best vs plain fp32 | median vs plain fp32 | first loss |",
        "|---|---|---|---|---|---|",
        *rows,
    ])


def trl_update(model: nn.Module, spec: BenchSpec, tokenizer, out_dir: str) -> Callable[[], tuple[float, float]]:
    """A closure doing one update through TRL's GRPOTrainer (see the module docstring)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    device = next(model.parameters()).device
    args = GRPOConfig(
        output_dir=out_dir, report_to="none", beta=0.0, loss_type="dapo", epsilon=spec.eps,
        learning_rate=spec.lr, weight_decay=spec.weight_decay, max_grad_norm=spec.grad_clip,
        per_device_train_batch_size=spec.batch, num_generations=spec.batch,
        max_completion_length=spec.completion_tokens, bf16=device.type == "cuda",
        gradient_checkpointing=spec.gradient_checkpointing,
    )
    optimizer = make_optimizer(model, train_config(spec))
    trainer = GRPOTrainer(
        model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
        train_dataset=Dataset.from_dict({"prompt": ["bench"] * spec.batch}), processing_class=tokenizer,
        optimizers=(optimizer, None),
    )
    trainer.current_gradient_accumulation_steps = 1
    prompt_ids, completion_ids, advantages = make_batch(spec, model.config.vocab_size)
    inputs = {
        "prompt_ids": prompt_ids.to(device),
        "prompt_mask": torch.ones_like(prompt_ids, device=device),
        "completion_ids": completion_ids.to(device),
        "completion_mask": torch.ones_like(completion_ids, device=device),
        "advantages": advantages.to(device),
        "num_items_in_batch": torch.tensor(completion_ids.numel(), device=device),
    }

    def step() -> tuple[float, float]:
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, inputs)
        trainer.accelerator.backward(loss)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach()), float(grad_norm)

    return step


class PeakMemory:
    """Peak RSS of this process while inside `with` blocks (a thread samples it), over a baseline taken at
    construction; on CUDA also the peak of `torch.cuda.memory_allocated` from construction on."""

    def __init__(self, device: torch.device, interval_s: float = 0.005):
        import psutil

        self._process = psutil.Process()
        self._interval_s = interval_s
        self._device = device
        self.baseline = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    def report(self) -> dict[str, float]:
        gib = 2.0**30
        out = {"peak_rss_gib": self.peak / gib, "rss_rise_gib": (self.peak - self.baseline) / gib}
        if self._device.type == "cuda":
            out["cuda_peak_gib"] = torch.cuda.max_memory_allocated(self._device) / gib
        return out


def _worker(conn: Connection, side: str, spec: BenchSpec) -> None:
    """One side in its own process: load, report ready, then one update per "step" message until "stop"."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    warnings.filterwarnings("ignore", message="TRL currently supports vLLM")  # TRL's import-time notice; vLLM is not used
    torch.manual_seed(spec.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)
    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=torch.float32).to(device)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    with tempfile.TemporaryDirectory(prefix="bench-trl-") as out_dir:
        if side == "ours":
            step = our_update(model, spec, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        else:
            step = trl_update(model, spec, tokenizer, out_dir)
        memory = PeakMemory(device)
        conn.send({"threads": torch.get_num_threads()})
        while conn.recv() == "step":
            with memory:
                start = time.perf_counter()
                loss, grad_norm = step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - start
            conn.send((elapsed, loss, grad_norm))
        conn.send(memory.report())


def _ask(conn: Connection, side: str, message: str | None = None):
    if message is not None:
        conn.send(message)
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError(f"the {side!r} bench process died (its traceback is above)") from None


def run_bench(
    spec: BenchSpec, sides: tuple[str, ...] = SIDES, repeats: int = 3, warmup: int = 1
) -> tuple[dict[str, SideResult], int]:
    """Spawn one process per side, alternate `warmup + repeats` updates between them; returns the results
    per side and the torch thread count of the workers."""
    context = multiprocessing.get_context("spawn")
    conns, processes, results = {}, {}, {side: SideResult() for side in sides}
    try:
        for side in sides:
            conns[side], child = context.Pipe()
            processes[side] = context.Process(target=_worker, args=(child, side, spec), daemon=True)
            processes[side].start()
            child.close()
        threads = [_ask(conns[side], side)["threads"] for side in sides][0]
        with tqdm(total=(warmup + repeats) * len(sides), desc="bench trainer", unit="update") as bar:
            for i in range(warmup + repeats):
                for side in sides if i % 2 == 0 else sides[::-1]:
                    seconds, loss, grad_norm = _ask(conns[side], side, "step")
                    if i == 0:
                        results[side].first_loss, results[side].first_grad_norm = loss, grad_norm
                    if i >= warmup:
                        results[side].seconds.append(seconds)
                    bar.update()
        for side in sides:
            results[side].memory = _ask(conns[side], side, "stop")
    finally:
        for process in processes.values():
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    return results, threads


def format_table(spec: BenchSpec, results: dict[str, SideResult], threads: int, model_name: str) -> str:
    """The Markdown report: throughput, ratio, memory, the same-update evidence and the machine."""
    tokens = spec.tokens
    ours, trl = results["ours"], results["trl"]
    (o_best, o_med, o_worst), (t_best, t_med, t_worst) = ours.tokens_per_s(tokens), trl.tokens_per_s(tokens)
    import transformers
    import trl as trl_module

    cpu = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu

    rows = [
        ("update tokens/s, best", f"{o_best:,.1f}", f"{t_best:,.1f}", f"**{o_best / t_best:.2f}x**"),
        ("update tokens/s, median", f"{o_med:,.1f}", f"{t_med:,.1f}", f"{o_med / t_med:.2f}x"),
        ("update tokens/s, worst", f"{o_worst:,.1f}", f"{t_worst:,.1f}", f"{o_worst / t_worst:.2f}x"),
        ("update seconds, best", f"{min(ours.seconds):.2f}", f"{min(trl.seconds):.2f}", ""),
    ]
    memory_rows = {
        "peak_rss_gib": "peak RSS during updates (GiB)",
        "rss_rise_gib": "RSS rise over loaded baseline (GiB)",
        "cuda_peak_gib": "CUDA max allocated (GiB)",
    }
    for key, label in memory_rows.items():
        if key in ours.memory:
            o, t = ours.memory[key], trl.memory[key]
            rows.append((label, f"{o:.2f}", f"{t:.2f}", f"{o / t:.2f}x"))
    rows += [
        ("first-update loss (same update: equal)", f"{ours.first_loss:.6f}", f"{trl.first_loss:.6f}", ""),
        ("first-update grad norm (same update: equal)", f"{ours.first_grad_norm:.6f}", f"{trl.first_grad_norm:.6f}", ""),
    ]
    lines = [
        f"model {model_name} (fp32 weights, {'bf16 autocast' if torch.cuda.is_available() else 'fp32 compute'}), "
        f"batch {spec.batch} x ({spec.prompt_tokens} prompt + {spec.completion_tokens} completion) = {tokens} tokens per update, "
        f"{len(ours.seconds)} timed updates per side after warm-up, alternated",
        "",
        "| measurement | ours | TRL GRPOTrainer | ours / TRL |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        f"target ours / TRL >= 1.0 (goal 1.5): {'met' if o_best / t_best >= 1.0 else 'NOT met'} (best of {len(ours.seconds)})",
        f"machine: {device}; torch {torch.__version__} with {threads} threads; transformers {transformers.__version__}; "
        f"trl {trl_module.__version__}; gradient checkpointing {'on' if spec.gradient_checkpointing else 'off'}",
    ]
    return "\n".join(lines)


def main(model: str = "smollm2-135m-instruct", model_dir: str | None = None, batch: int = 8, prompt_tokens: int = 128,
         completion_tokens: int = 128, repeats: int = 3, warmup: int = 1, gradient_checkpointing: bool = False) -> int:
    if importlib.util.find_spec("trl") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    from chord_env.models import prepare_model
    from chord_env.tokenizer import cache_root

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    folder = prepare_model(model, model_dir or cache_root() / "models" / f"{model}-fp32", dtype="fp32")
    spec = BenchSpec(str(folder), batch=batch, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     gradient_checkpointing=gradient_checkpointing)
    results, threads = run_bench(spec, SIDES, repeats=repeats, warmup=warmup)
    print(format_table(spec, results, threads, model))
    print()
    return variants_main(str(folder), model, batch, prompt_tokens, completion_tokens, repeats, warmup, gradient_checkpointing)


def variants_main(model_dir: str, model_name: str, batch: int = 8, prompt_tokens: int = 512, completion_tokens: int = 64,
                  repeats: int = 3, warmup: int = 1, gradient_checkpointing: bool = False, group_size: int = 8) -> int:
    """Print the variants table (share_prefix x bf16 autocast) for a prepared model folder; needs no TRL."""
    spec = BenchSpec(model_dir, batch=batch, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     gradient_checkpointing=gradient_checkpointing, group_size=min(group_size, batch))
    print(format_variants(spec, run_variants(spec, repeats=repeats, warmup=warmup), model_name))
    return 0


def ranks_worker(spec: BenchSpec, ranks: int, kind: str, repeats: int, warmup: int, out: str) -> None:
    """One rank (or the single process) of `run_ranks`: `warmup + repeats` updates of the global bench
    batch cut into 2 * `ranks` micro-batches; rank 0 writes {"seconds", "threads", "first_loss"} as JSON to `out`."""
    from transformers import AutoModelForCausalLM

    joined = distributed.init()
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=torch.float32).to(distributed.device())
    model.train()
    policy = distributed.wrap(model, kind)
    config = dataclasses.replace(train_config(spec), micro_batch_tokens=max(1, spec.tokens // (2 * ranks)), data_parallel=kind)
    optimizer = make_optimizer(policy, config)
    prompt_ids, completion_ids, advantages = make_batch(spec, model.config.vocab_size)
    rl = [
        Sequence(p + c, [0] * len(p) + [1] * len(c), [0.0] * (len(p) + len(c)), a)
        for p, c, a in zip(prompt_ids.tolist(), completion_ids.tolist(), advantages.tolist())
    ]
    seconds, first_loss = [], float("nan")
    for i in range(warmup + repeats):
        distributed.barrier()
        start = time.perf_counter()
        metrics = update(policy, optimizer, rl, [], 0.0, config, 0)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        distributed.barrier()
        if i == 0:
            first_loss = metrics["loss/rl"]
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    if distributed.is_main():
        Path(out).write_text(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(), "first_loss": first_loss}))
    if joined:
        distributed.close()


def run_ranks(spec: BenchSpec, ranks: int, kind: str = "ddp", repeats: int = 3, warmup: int = 1) -> dict[int, dict]:
    """`ranks_worker` in one process, then under torchrun with `ranks` processes on loopback; results by rank count."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-ranks-") as folder:
        for n in (1, ranks):
            out = Path(folder) / f"{n}.json"
            worker = ["-m", "chord_env.bench.trainer", "ranks-worker", json.dumps(dataclasses.asdict(spec)), str(ranks), kind,
                      str(repeats), str(warmup), str(out)]
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            launcher = [] if n == 1 else ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(n),
                                          "--master_addr", "127.0.0.1", "--master_port", str(port)]
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
            print(f"bench trainer: {n} rank(s) ...", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, *launcher, *worker], env=env, check=True)
            results[n] = json.loads(out.read_text())
    return results


def format_ranks(spec: BenchSpec, results: dict[int, dict], kind: str, model_name: str) -> str:
    """Markdown: update tokens/s with 1 rank and with N, their ratio, and what the ratio means on this machine."""
    n, cores = max(results), os.cpu_count() or 1
    base_best, base_median, _ = SideResult(seconds=results[1]["seconds"]).tokens_per_s(spec.tokens)
    rows = []
    for ranks in (1, n):
        best, median, _ = SideResult(seconds=results[ranks]["seconds"]).tokens_per_s(spec.tokens)
        rows.append(f"| {ranks} | {results[ranks]['threads']} | {best:,.1f} | {median:,.1f} | **{best / base_best:.2f}x** | "
                    f"{median / base_median:.2f}x | {results[ranks]['first_loss']:.6f} |")
    if torch.cuda.is_available():
        device = "CUDA, one GPU per rank"
        meaning = (f"each rank has a GPU of its own, so {n} ranks can approach {n}x; the gap to {n}x is the gradient "
                   "reduction in every backward pass and waiting for the slowest rank")
    else:
        device = f"CPU, {cores} cores, gloo over loopback"
        one_cores, n_cores = min(results[1]["threads"], cores), min(n * results[n]["threads"], cores)
        price = ("the price of data parallelism: a gradient all-reduce per micro-batch over gloo, a process per "
                 "rank, a smaller matrix per thread")
        if n_cores <= one_cores:
            meaning = (f"on {cores} cores the single process already keeps {one_cores} busy with its threads and the {n} "
                       f"ranks share the same {n_cores}, a thread each: no more hardware. Below 1x is {price}; above "
                       f"1x, a thread per process uses these cores better than {results[1]['threads']} intra-op threads "
                       "in one process (small matrices, or cores busy with other work); near 1x, data parallelism costs "
                       f"little here. None of it is the speed-up of more hardware: with a GPU (or a machine) per rank "
                       f"the same {n} ranks would approach {n}x")
        else:
            meaning = (f"the {n} ranks keep {n_cores} of the {cores} cores busy against the single process's {one_cores} "
                       f"(its threads), so the ratio mixes the extra cores with {price}; run without OMP_NUM_THREADS "
                       f"to compare on the same cores")
    return "\n".join([
        f"our update on {model_name}: one global batch of {spec.batch} x ({spec.prompt_tokens} prompt + {spec.completion_tokens} "
        f"completion) = {spec.tokens} tokens in {2 * n} micro-batches, by 1 process and by {n} ranks under torchrun "
        f"({kind}); {len(results[1]['seconds'])} timed updates each after warm-up; {device}",
        "",
        "| ranks | threads per rank | update tokens/s, best | median | best vs 1 rank | median vs 1 rank | first loss (same update: equal) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"what the ratio means: {meaning}.",
    ])


def ranks_main(model: str = "smollm2-135m-instruct", model_dir: str | None = None, ranks: int = 2, kind: str = "ddp", batch: int = 8,
               prompt_tokens: int = 128, completion_tokens: int = 128, repeats: int = 3, warmup: int = 1) -> int:
    """Print the 1 rank against `ranks` ranks table (`run_ranks`); needs no TRL."""
    from chord_env.models import prepare_model
    from chord_env.tokenizer import cache_root

    folder = prepare_model(model, model_dir or cache_root() / "models" / f"{model}-fp32", dtype="fp32")
    spec = BenchSpec(str(folder), batch=batch, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    print(format_ranks(spec, run_ranks(spec, ranks, kind, repeats, warmup), kind, model))
    return 0


if __name__ == "__main__":  # python -m chord_env.bench.trainer MODEL_DIR [batch prompt completion repeats]
    args = sys.argv[1:]
    if args[0] == "ranks-worker":  # run_ranks' processes: SPEC_JSON RANKS KIND REPEATS WARMUP OUT
        ranks_worker(BenchSpec(**json.loads(args[1])), int(args[2]), args[3], int(args[4]), int(args[5]), args[6])
        sys.exit(0)
    sys.exit(variants_main(args[0], args[0], *map(int, args[1:5])))
