"""The CHORD training loop: on-policy GRPO blended with token-weighted SFT on expert traces.

One optimizer step, read top to bottom (CHORD, arXiv 2508.11408; docs/method.md):
1. mu = mu_schedule(step).
2. If mu < 1: P tasks x n samples are rolled out on-policy through the backend (the runner);
   rewards -> group-normalised advantages A_i = (R_i - mean) / (std + 1e-6), one per trajectory.
3. If mu > 0: E expert traces, a seeded permutation per epoch by quota per file (`expert.expert_batch`),
   rendered with the rollouts' chat template.
4. `ppo_epochs` passes over the batch, each in `ppo_mini_batches` optimizer steps (default 1 x 1: one
   step, as in the authors' setting); rollouts and expert traces are split alike, so each step is the
   mu-blend of its own mini-batches. With one step the PPO old logprobs are the current weights' own,
   detached (ratio == 1, no extra forward); with more, the trainer computes them once, no grad, under
   the rollout weights before the first step, so from the second step on the ratio leaves 1 and the
   clip and dual clip act. Each step: micro-batches by token budget (with `share_prefix`, each GRPO
   group's prompt runs once and its samples attend to it: `prefix.py`); for each, token logprobs at the
   loss positions only; RL batches give L_RL (PPO clip with dual clip, each token weighted by the
   truncated importance ratio min(p_trainer_old / p_engine, tis_cap) against the engine's behaviour
   logprobs), SFT batches give L_SFT = token-mean of -logp * w with w the chosen token weight (phi =
   p(1 - p) for CHORD-phi). Each micro-batch's mean is scaled by its share of the mini-batch's loss
   tokens (or sequences, for seq-mean), so the accumulated gradient is exactly that of
   (1 - mu) L_RL + mu L_SFT over the whole mini-batch; no normaliser is entered by hand.
5. Per step: gradient clipping, AdamW step (fp32 master weights; bf16 autocast on CUDA, or with dtype bf16);
   with `lora`, over the LoRA adapters alone, the base weights frozen (`lora.py`).
6. Weights synced to the backend before it is next used (the next rollouts or an evaluation; a run
   of pure-SFT steps needs no engine, so it syncs once, not every step; remote servers also before
   their first use, as they may hold any weights), then checked: for a backend holding its own copy
   of the weights (`Capabilities.checks_parity`: vLLM, each remote server), the max |logprob
   difference| between the engine and the trainer on a fixed probe batch (`sync/parity_max_diff`); and in the update, between the engine's behaviour logprobs of the
   sampled tokens and the trainer's (`sync/logprob_max_diff`). Every rollout runs on the weights of
   the step before it: strictly on-policy.
7. Metrics (JSON lines, TensorBoard), periodic evaluation, periodic checkpoints; PNG plots at the end.

The RL tasks of step s are the training split's tasks with seeds `seed * 10**6 + s * P + i`, and the
expert traces of step s a pure function of (seed, s) (`expert.expert_batch`), so a resumed run sees
the same data as an uninterrupted one. Periodic evaluation plays the envs' validation and held-out
splits (`eval_envs`), with seeds from 10**9 on, disjoint from training seeds even for envs without
splits.

Under torchrun (`distributed.py`, docs/launch.md) each rank rolls out its share of the step's tasks,
every rank then holds the global batch, runs its share of the micro-batches with the global
normalisers, and the ranks' gradients are summed: the update one process makes on that batch.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from chord_env.agents.backend import capabilities, open_backend
from chord_env.agents.runner import rollout
from chord_env.agents.weight_sync import logprob_parity
from chord_env.chat import ChatRenderer
from chord_env.envs.mixture import make_for_split, make_mix, mix_weights
from chord_env.trainer import distributed
from chord_env.trainer.batching import MicroBatch, Sequence, pack
from chord_env.trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from chord_env.trainer.config import TrainConfig, save_config
from chord_env.trainer.distributed import token_logprobs
from chord_env.trainer.expert import expert_batch, load_expert, quotas
from chord_env.trainer.lora import InitialPolicy, add_adapters, merged_model
from chord_env.trainer.losses import chord_loss, group_advantages, grpo_loss, sft_loss
from chord_env.trainer.metrics import MetricsLogger, plot_metrics
from chord_env.trainer.mu import LearnedMu
from chord_env.trainer.prefix import pack_shared
from chord_env.trainer.token_weights import STATS_NEEDED, phi, phi_distribution, token_weights
from chord_env.types import Trajectory

EVAL_SEED = 10**9


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def task_seeds(config: TrainConfig, step: int) -> list[int]:
    """The RL task seeds of optimizer step `step` (the data position is the step itself)."""
    return [config.seed * 10**6 + step * config.tasks_per_step + i for i in range(config.tasks_per_step)]


def rl_sequences(trajectories: list[Trajectory]) -> list[Sequence]:
    """Trajectories -> sequences with GRPO advantages, normalised within each group (same task). An
    episode that ended before its prompt was encoded (an env failure) has no tokens: its reward counts
    in its group's normalisation, and it yields no sequence."""
    groups: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        groups.setdefault(t.group_id, []).append(t)
    out = []
    for members in groups.values():
        advantages = group_advantages(torch.tensor([[t.reward for t in members]], dtype=torch.float64))[0]
        out += [Sequence(t.token_ids, t.loss_mask, t.logprobs, float(a)) for t, a in zip(members, advantages) if t.token_ids]
    return out


def _autocast(device: torch.device, dtype: str):
    """bf16 autocast over fp32 master weights: on CUDA for "auto", everywhere for "bf16"."""
    enabled = dtype == "bf16" or (dtype == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _loss_share(mb: MicroBatch, total: int, aggregation: str) -> float:
    units = mb.num_loss_sequences if aggregation == "seq-mean" else mb.num_loss_tokens
    return units / max(total, 1)


def _backward_rl(model, batches: list[MicroBatch], scale: float, config: TrainConfig, device, ref_model=None) -> dict[str, float]:
    """Accumulate scale * grad L_RL over this rank's share of the micro-batches (all of them in one
    process; `distributed.my_batches`), normalised over all of them; returns share-weighted metrics.

    The PPO old logprobs are each batch's `prox_logp` (the trainer's own under the rollout weights, from
    `_with_old_logprobs`) or, where there are none, the current ones detached: one step per batch, ratio
    == 1 and no extra forward. With config.tis_cap, each token is weighted by min(exp(old - engine), cap)
    against the engine's behaviour logprobs (`old_logp`). With a reference model (kl_coef > 0), adds the
    k3 KL penalty to it (its logprobs taken from the batch when they were computed beforehand)."""
    total = sum(mb.num_loss_sequences if config.aggregation == "seq-mean" else mb.num_loss_tokens for mb in batches)
    metrics: dict[str, float] = {}
    max_diff = 0.0
    for mb, weight in distributed.my_batches(batches, [mb.num_loss_tokens > 0 for mb in batches]):  # none: episodes cut before any turn
        mb = mb.to(device)
        share = weight * _loss_share(mb, total, config.aggregation)
        with _autocast(device, config.dtype):
            out = token_logprobs(model, mb.input_ids, mb.attention_mask, mb.loss_mask, stats=("entropy",), temperature=config.rollout.temperature, prefix=mb.prefix)
            ref_logp = mb.ref_logp
            if ref_model is not None and ref_logp is None:
                with torch.no_grad():
                    ref_logp = token_logprobs(ref_model, mb.input_ids, mb.attention_mask, mb.loss_mask, temperature=config.rollout.temperature, prefix=mb.prefix)["logp"]
        logp = out["logp"]
        old_logp = logp.detach() if mb.prox_logp is None else mb.prox_logp.to(logp.dtype)
        loss, m = grpo_loss(
            logp, old_logp, mb.advantages, mb.loss_mask,
            eps_low=config.eps_low, eps_high=config.eps_high, dual_clip_c=config.dual_clip_c,
            aggregation=config.aggregation, ref_logp=ref_logp, kl_coef=config.kl_coef,
            behaviour_logp=mb.old_logp, tis_cap=config.tis_cap,
        )
        (scale * share * loss).backward()
        m["policy/entropy"] = float((out["entropy"] * mb.loss_mask).sum() / mb.loss_mask.sum().clamp(min=1))
        for k, v in m.items():
            metrics[k] = metrics.get(k, 0.0) + share * v
        max_diff = max(max_diff, float((old_logp - mb.old_logp).abs()[mb.loss_mask].max()))
    metrics["sync/logprob_max_diff"] = max_diff
    return distributed.reduce_metrics(metrics)


def _pack_rl(rl: list[Sequence], config: TrainConfig, pad_id: int) -> list[MicroBatch]:
    """RL micro-batches: with share_prefix, each group's prompt once (`prefix.pack_shared`), else plain."""
    return pack_shared(rl, config.micro_batch_tokens, pad_id) if config.share_prefix else pack(rl, config.micro_batch_tokens, pad_id)


def _with_old_logprobs(model, rl: list[Sequence], config: TrainConfig, device, pad_id: int, ref_model=None) -> list[Sequence]:
    """The RL sequences with `prox_logprobs`, the trainer's logprobs under the current weights (those that
    produced the rollouts), and with a KL term `ref_logprobs`: one no-grad forward, before the first step."""
    out = list(rl)
    with torch.no_grad():
        for mb in _pack_rl(rl, config, pad_id):
            prox = ref = None
            if mb.num_loss_tokens > 0:
                on = mb.to(device)
                with _autocast(device, config.dtype):
                    prox = token_logprobs(model, on.input_ids, on.attention_mask, on.loss_mask, temperature=config.rollout.temperature, prefix=on.prefix)["logp"]
                    if ref_model is not None:
                        ref = token_logprobs(ref_model, on.input_ids, on.attention_mask, on.loss_mask, temperature=config.rollout.temperature, prefix=on.prefix)["logp"]
            for row, i in enumerate(mb.index.tolist()):
                start = 0 if mb.offset is None else int(mb.offset[row])  # shared-prefix rows begin after their prefix
                n = len(rl[i].token_ids) - start
                values = lambda t: [0.0] * (start + n) if t is None else [0.0] * start + t[row, :n].tolist()  # noqa: E731
                out[i] = dataclasses.replace(rl[i], prox_logprobs=values(prox), ref_logprobs=values(ref) if ref_model is not None else None)
    return out


def _backward_sft(model, batches: list[MicroBatch], scale: float, config: TrainConfig, device) -> dict[str, float]:
    """Accumulate scale * grad L_SFT (token-weighted) over this rank's share of the micro-batches,
    normalised over all of them (as `_backward_rl`)."""
    total = sum(mb.num_loss_tokens for mb in batches)
    stats = STATS_NEEDED.get(config.token_weight, ())
    extra = {"focal": {"gamma": config.focal_gamma}, "low_prob": {"w_max": config.low_prob_max}}.get(config.token_weight, {})
    metrics: dict[str, float] = {}
    phis = []
    for mb, weight in distributed.my_batches(batches, [mb.num_loss_tokens > 0 for mb in batches]):
        mb = mb.to(device)
        share = weight * mb.num_loss_tokens / max(total, 1)
        with _autocast(device, config.dtype):
            out = token_logprobs(model, mb.input_ids, mb.attention_mask, mb.loss_mask, stats=stats)
        weights = token_weights(config.token_weight, out["logp"], **{s: out[s] for s in stats}, **extra)
        loss, m = sft_loss(out["logp"], mb.loss_mask, weights)
        (scale * share * loss).backward()
        for k, v in m.items():
            metrics[k] = metrics.get(k, 0.0) + share * v
        if weight:
            phis.append(phi(out["logp"])[mb.loss_mask.bool()].cpu())
    phis = distributed.gather(phis)
    return distributed.reduce_metrics(metrics) | (phi_distribution(torch.cat(phis)) if phis else {})


def make_optimizer(model, config: TrainConfig, step: int = 0) -> torch.optim.AdamW:
    """A fresh AdamW over the trainable parameters (all of them, or the LoRA adapters alone) for the stage
    that `step` belongs to (`second_stage`), fused: one pass per parameter instead of a dozen elementwise
    kernels (SmolLM2-135M on 2 CPU cores: 0.09 s per step against 0.42 s; transformers' default optimizer too)."""
    lr = config.second_stage_lr if second_stage(config, step) else config.lr
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=lr, betas=tuple(config.betas), weight_decay=config.weight_decay, fused=True)


def second_stage(config: TrainConfig, step: int) -> bool:
    """Whether `step` lies in the second stage of a two-stage run (`second_stage_lr` with a switch at mu.at)."""
    return config.second_stage_lr is not None and step >= config.mu.at


def make_learned_mu(config: TrainConfig) -> tuple[LearnedMu | None, torch.optim.SGD | None]:
    """The learned mu (exploratory; `trainer/mu.py`, `LearnedMu`) and its SGD, from `mu_target_share`,
    `learned_mu_bounds` and `learned_mu_lr`, starting at the constant `mu`; (None, None) without `learned_mu`."""
    if not config.learned_mu:
        return None, None
    mu_min, mu_max = config.learned_mu_bounds
    learned_mu = LearnedMu(mu_init=config.mu(0), target_share=config.mu_target_share, mu_min=mu_min, mu_max=mu_max)
    return learned_mu, torch.optim.SGD(learned_mu.parameters(), lr=config.learned_mu_lr)


def _grad_norm(model) -> float:
    return distributed.grad_norm(list(model.parameters()))


def update(model, optimizer, rl: list[Sequence], sft: list[Sequence], mu: float, config: TrainConfig,
           pad_id: int, learned_mu: LearnedMu | None = None, mu_optimizer=None, ref_model=None) -> dict[str, float]:
    """The optimizer steps of one rollout batch on (1 - mu) L_RL(rl) + mu L_SFT(sft).

    ppo_epochs == ppo_mini_batches == 1 (the default): one step, PPO old logprobs = the current ones
    detached (ratio == 1, no extra forward). Otherwise the trainer's old logprobs (and the reference's,
    with a KL term) are computed once, no grad, under the current weights, i.e. those that produced the
    rollouts; then ppo_epochs passes, each split into ppo_mini_batches steps (fewer if a side has fewer
    sequences). The SFT term is split the same way: the expert traces are cut into as many contiguous
    mini-batches as the rollouts, and step i trains on (1 - mu) L_RL(rollouts_i) + mu L_SFT(experts_i),
    so every step keeps the mu-blend and each expert trace, like each rollout, is trained on ppo_epochs
    times. Mini-batches are contiguous and not reshuffled between passes (GRPO groups stay together;
    a resumed run repeats the same steps). Metrics are means over the steps ("sync/" ones the max),
    plus "ppo/optimizer_steps".
    """
    epochs, minis = config.ppo_epochs, config.ppo_mini_batches
    if epochs == 1 and minis == 1:
        return _optimizer_step(model, optimizer, rl, sft, mu, config, pad_id, learned_mu, mu_optimizer, ref_model)
    device = next(model.parameters()).device
    if mu < 1 and rl:
        rl = _with_old_logprobs(model, rl, config, device, pad_id, ref_model)
    sizes = ([len(rl)] if mu < 1 and rl else []) + ([len(sft)] if mu > 0 and sft else [])
    minis = max(1, min([minis, *sizes]))
    parts = list(zip(_split(rl, minis), _split(sft, minis)))
    steps = []
    for _ in range(epochs):
        for rl_part, sft_part in parts:
            mu_now = float(learned_mu().detach()) if learned_mu is not None else mu
            steps.append(_optimizer_step(model, optimizer, rl_part, sft_part, mu_now, config, pad_id, learned_mu, mu_optimizer, ref_model))
    keys = dict.fromkeys(k for m in steps for k in m)
    metrics = {k: (max if k.startswith("sync/") else statistics.fmean)([m[k] for m in steps if k in m]) for k in keys}
    metrics["ppo/optimizer_steps"] = len(steps)
    return metrics


def _split(items: list, parts: int) -> list[list]:
    """items cut into `parts` contiguous pieces whose sizes differ by at most one."""
    return [items[i * len(items) // parts : (i + 1) * len(items) // parts] for i in range(parts)]


def _optimizer_step(model, optimizer, rl: list[Sequence], sft: list[Sequence], mu: float, config: TrainConfig,
                    pad_id: int, learned_mu: LearnedMu | None = None, mu_optimizer=None, ref_model=None) -> dict[str, float]:
    """One optimizer step on (1 - mu) L_RL(rl) + mu L_SFT(sft); the SFT forward is skipped at mu == 0."""
    device = next(model.parameters()).device
    rl_batches = _pack_rl(rl, config, pad_id) if mu < 1 else []
    sft_batches = pack(sft, config.micro_batch_tokens, pad_id) if mu > 0 else []
    metrics: dict[str, float] = {}
    if learned_mu is None:
        metrics.update(_backward_rl(model, rl_batches, 1.0 - mu, config, device, ref_model) if rl_batches else {})
        metrics.update(_backward_sft(model, sft_batches, mu, config, device) if sft_batches else {})
    else:
        metrics.update(_backward_rl(model, rl_batches, 1.0, config, device, ref_model))
        rl_grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
        g_rl = _grad_norm(model)
        optimizer.zero_grad(set_to_none=True)
        metrics.update(_backward_sft(model, sft_batches, 1.0, config, device))
        g_sft = _grad_norm(model)
        mu = float(learned_mu().detach())
        for p, g in zip(model.parameters(), rl_grads):
            sft_grad = p.grad if p.grad is not None else torch.zeros_like(p)
            p.grad = (1.0 - mu) * (g if g is not None else torch.zeros_like(p)) + mu * sft_grad
        mu_optimizer.zero_grad()
        learned_mu.balance_loss(g_rl, g_sft).backward()
        mu_optimizer.step()
        metrics.update({"chord/grad_norm_rl": g_rl, "chord/grad_norm_sft": g_sft})
    rl_loss = torch.tensor(metrics.get("loss/rl", 0.0))  # 0 when no rollout token carries loss (all cut)
    metrics["loss/total"] = float(chord_loss(rl_loss, torch.tensor(metrics["loss/sft"]) if "loss/sft" in metrics else None, mu))
    metrics["chord/mu"] = mu
    metrics["optim/lr"] = optimizer.param_groups[0]["lr"]
    if config.token_weight == "phi" and "sft/weight_mean" in metrics:
        metrics["chord/phi_mean"] = metrics["sft/weight_mean"]
    metrics["grad/norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return metrics


def reward_metrics(trajectories: list[Trajectory], prefix: str = "reward") -> dict[str, float]:
    """Mean reward, its spread, `accuracy` (the share of episodes the env judged solved, `success`),
    response length (sampled tokens) and the share of episodes the runner cut."""
    rewards = np.array([t.reward for t in trajectories], dtype=np.float64)
    lengths = np.array([sum(t.loss_mask) for t in trajectories], dtype=np.float64)
    return {
        f"{prefix}/mean": float(rewards.mean()),
        f"{prefix}/std": float(rewards.std()),
        f"{prefix}/accuracy": float(np.mean([t.success for t in trajectories])),
        f"{prefix}/response_length": float(lengths.mean()),
        f"{prefix}/truncated": float(np.mean([t.truncation is not None for t in trajectories])),
    }


def eval_envs(config: TrainConfig) -> dict[str, Callable[[], gym.Env]]:
    """The periodic evaluation's envs: every env of the mix, on its "validation" and "held_out" splits
    (where it has them), keyed "<env name>/<split>"; never the training split."""
    out = {}
    for env_id in mix_weights(config.env):
        for split in ("validation", "held_out"):
            if (env := make_for_split(env_id, split)) is not None:
                env.close()
                out[f"{env_id.split('/')[-1]}/{split}"] = partial(make_for_split, env_id, split)
    return out


def evaluate(backend, envs: dict[str, Callable[[], gym.Env]], renderer, config: TrainConfig, stop_ids: list[int]) -> dict[str, float]:
    """Greedy rollouts of `eval_tasks` tasks on each evaluation env (reset seeds from 10**9 on, so an
    env without splits is still seed-disjoint from training); `eval/accuracy` is the mean over envs."""
    rc = dataclasses.replace(config.rollout, group_size=1, temperature=0.0, top_p=1.0)
    seeds = list(range(EVAL_SEED, EVAL_SEED + config.eval_tasks))
    metrics: dict[str, float] = {}
    for name, make_env in envs.items():
        metrics.update(reward_metrics(list(rollout(backend, make_env, renderer, seeds, rc, stop_ids, progress=False)), f"eval/{name}"))
    for key in ("mean", "accuracy"):
        metrics[f"eval/{key}"] = float(np.mean([metrics[f"eval/{name}/{key}"] for name in envs]))
    return metrics


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run (or resume) a CHORD training run in `config.out`; returns the run folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chord_env.preflight import check_inputs

    check_inputs(config)  # model folder, env ids, expert rows: before anything loads or is written
    joined = distributed.init()  # under torchrun: one rank of several (docs/launch.md)
    main = distributed.is_main()  # rank 0 alone writes logs, evaluates, plots and saves the final model
    if distributed.world_size() > config.tasks_per_step:
        raise ValueError(f"tasks_per_step ({config.tasks_per_step}) must be >= the number of ranks ({distributed.world_size()})")
    run_dir = Path(config.out)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    seed_everything(config.seed)
    device = distributed.device()
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    renderer = ChatRenderer(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32).to(device)
    adapted = add_adapters(model, config.lora) if config.lora is not None else None  # LoRA: `model` gains adapters in place
    saved = adapted if adapted is not None else model  # what checkpoints hold: with LoRA, the adapter alone
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    learned_mu, mu_optimizer = make_learned_mu(config)
    uses_rl = learned_mu is not None or any(config.mu(s) < 1 for s in range(config.steps))
    ref_model = None
    if uses_rl and (config.kl_coef > 0 or config.log_kl_initial):  # the initial policy: with LoRA, the adapters switched off
        ref_model = InitialPolicy(adapted) if adapted is not None else copy.deepcopy(model).eval().requires_grad_(False)
    uses_sft = learned_mu is not None or any(config.mu(s) > 0 for s in range(config.steps))
    if uses_sft and not config.expert:
        raise ValueError("this config has mu > 0 (an SFT term) but no expert traces: set expert=PATH")
    expert_files = mix_weights(config.expert) if uses_sft else {}
    expert = [load_expert(path, renderer) for path in expert_files]
    expert_counts = quotas(list(expert_files.values()), config.expert_per_step)
    rollout_model = distributed.rollout_copy(model, config.data_parallel)  # what the backend reads: under FSDP2, a full copy
    policy = distributed.wrap(model, config.data_parallel)  # what the update trains: the model, or it under DDP or FSDP2
    saved = policy if distributed.is_sharded(policy) else saved  # FSDP2 checkpoints hold the shards
    optimizer = make_optimizer(policy, config, 0)

    start = 0
    checkpoint = distributed.broadcast(latest_checkpoint(run_dir) if main else None) if resume else None
    if resume and checkpoint is None:
        raise FileNotFoundError(f"{run_dir}: no complete checkpoint to resume from")
    if checkpoint is not None:
        extra = load_checkpoint(checkpoint, saved, optimizer, None)  # after the switch: the second stage's AdamW, lr included
        start = int(extra["step"])
        if learned_mu is not None:
            learned_mu.load_state_dict(extra["learned_mu"])
            mu_optimizer.load_state_dict(extra["mu_optimizer"])
    logger = MetricsLogger(run_dir, start_step=start + 1 if start else 0) if main else None
    can = capabilities(config.backend)
    if can.remote:  # each rank drives servers r, r + W, ... of the list (docs/launch.md)
        if distributed.world_size() > len(config.servers):
            raise ValueError(f"{len(config.servers)} servers for {distributed.world_size()} ranks: each rank needs servers of its own")
        backend = open_backend(distributed.my_share(list(config.servers)), config.backend, max_model_len=config.rollout.max_context)
    else:
        backend = open_backend(rollout_model if can.shares_weights else config.model, config.backend, max_model_len=config.rollout.max_context, seed=config.seed)
    make_env = partial(make_mix, config.env, "train")
    evaluation_envs = eval_envs(config) if config.eval_every else {}
    stop_ids = renderer.stop_token_ids()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def sync() -> dict[str, float]:
        """Push the trainer's weights to the backend and, where it holds a copy of them, check that copy
        against the trainer (a shared module needs no check); a backend made of several engines lists
        them as `replicas` (a remote backend's servers), and each is checked."""
        began = time.perf_counter()
        distributed.refresh(rollout_model, policy)
        backend.update_weights(rollout_model)
        out = {}
        if can.checks_parity:
            rollout_model.eval()
            out["sync/parity_max_diff"] = max(logprob_parity(r, rollout_model) for r in getattr(backend, "replicas", [backend]))
            rollout_model.train()
        return {**out, "perf/sync_s": time.perf_counter() - began}

    # the backend's weights lag the trainer's (a server's may be any at first); synced only before the backend is used
    stale = start > 0 or can.remote
    if config.eval_every and start == 0:
        first = sync() if stale else {}
        stale = False
        if main:
            logger.log(0, {**first, **evaluate(backend, evaluation_envs, renderer, config, stop_ids)})
    bar = tqdm(range(start, config.steps), desc="train", unit="step", initial=start, total=config.steps, disable=not main)
    for step in bar:
        mu = float(learned_mu().detach()) if learned_mu is not None else config.mu(step)
        if second_stage(config, step) and not second_stage(config, step - 1):
            optimizer = make_optimizer(policy, config, step)
        metrics: dict[str, float] = {}
        rl: list[Sequence] = []
        rollout_s = 0.0
        if mu < 1 or learned_mu is not None:
            if stale:
                metrics.update(sync())
                stale = False
            began = time.perf_counter()
            seeds = distributed.my_share(task_seeds(config, step))  # this rank's tasks; then every rank holds all trajectories
            seeded = dataclasses.replace(config.rollout, seed=seeds[0] * 1000) if can.per_request_seeds else config.rollout
            trajectories = distributed.gather(list(rollout(backend, make_env, renderer, seeds, seeded, stop_ids, progress=False)))
            rl = rl_sequences(trajectories)
            metrics.update(reward_metrics(trajectories))
            rollout_s = time.perf_counter() - began
        sft = expert_batch(expert, expert_counts, step, config.seed) if expert else []
        began = time.perf_counter()
        metrics.update(update(policy, optimizer, rl, sft, mu, config, pad_id, learned_mu, mu_optimizer, ref_model))
        update_s = time.perf_counter() - began
        stale = True
        trained_tokens = sum(len(s.token_ids) for s in rl + sft)
        metrics.update({
            "perf/rollout_s": rollout_s,
            "perf/update_s": update_s,
            "perf/update_tokens_per_s": trained_tokens / max(update_s, 1e-9),
        })
        if config.eval_every and (step + 1) % config.eval_every == 0:
            metrics.update(sync())
            stale = False
            if main:
                metrics.update(evaluate(backend, evaluation_envs, renderer, config, stop_ids))
        if main:
            logger.log(step + 1, metrics)
        bar.set_postfix({k.split("/")[-1]: f"{metrics[k]:.3g}" for k in ("reward/mean", "chord/mu", "loss/total") if k in metrics})
        if (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0) or step + 1 == config.steps:
            extra = {"step": step + 1}
            if learned_mu is not None:
                extra.update(learned_mu=learned_mu.state_dict(), mu_optimizer=mu_optimizer.state_dict())
            save_checkpoint(run_dir, step + 1, saved, optimizer, None, extra)
    backend.close()
    distributed.refresh(rollout_model, policy)
    if main:
        logger.close()
        (merged_model(adapted) if adapted is not None else rollout_model).save_pretrained(run_dir / "final")  # a model folder every command takes (eval, rollout)
        tokenizer.save_pretrained(run_dir / "final")
        plot_metrics(run_dir)
    distributed.barrier()
    if joined:
        distributed.close()
    return run_dir

