"""Data-parallel (DDP) and sharded (FSDP2) training under `torchrun`, and the identity in one process.

Launch: `torchrun --nproc-per-node N --no-python chord-env train ...` (docs/launch.md). torchrun sets
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init` joins the process group (NCCL on
CUDA, one GPU per rank by LOCAL_RANK; gloo on CPU). Without torchrun (no WORLD_SIZE, or 1) every
function here is the single-process identity, so `train.py` has one code path.

How a step is split over W ranks, so that W ranks make the update one process makes on the same
global batch:
- Rollouts: rank r plays the step's task seeds r, r + W, ... with its own backend (`my_share`), synced
  from its own copy of the weights; the trajectories are then gathered (`gather`), so every rank holds
  the global batch. Expert traces are a pure function of (seed, step) (`expert.expert_batch`): every
  rank draws the global set itself.
- Update: every rank packs the same global micro-batches (packing is deterministic) and runs
  micro-batches r, r + W, ... of them (`my_batches`). Loss normalisers are the loss tokens (or
  sequences) of the whole global batch, counted on the global batch every rank holds. DDP and FSDP2
  average gradients over the ranks, so each rank scales its micro-batches' losses by W: the average is
  the sum of the ranks' gradients, the single-process gradient. Averaging also keeps DDP right when it
  all-reduces the accumulated gradient in every backward pass: the part reduced before is the same on
  every rank, and its average is itself (a sum would count it W times).
- Collectives must line up: DDP all-reduces and FSDP2 reduce-scatters in every backward pass, and FSDP2
  all-gathers in every forward pass, so every rank runs the same number of passes of each kind. A rank
  with fewer micro-batches repeats one with weight 0 (its gradient is exactly zero). The no-grad pass
  for the PPO old logprobs (`ppo_epochs` or `ppo_mini_batches` > 1) runs every micro-batch on every
  rank: redundant work, but in step, and every rank gets every sequence's old logprobs.
- Metrics: the ranks' share-weighted sums, each W times its part, average to the global value
  (`reduce_metrics`); "sync/" maxima take the max.
- Rank 0 alone writes logs, evaluates, plots and saves the final model; checkpoints: see
  `trainer/checkpoint.py` (DDP: rank 0 writes the usual layout; FSDP2: every rank writes its shards
  through `torch.distributed.checkpoint`, rank 0 the rest and the completion marker).

DDP and FSDP2 hook a module's `forward`, while `logprobs.token_logprobs` runs the decoder and the LM head
separately, so `wrap` puts the policy inside `TokenLogprobs`, a module whose forward is that function,
and `token_logprobs` here calls a wrapped policy through its forward. FSDP2 shards each decoder layer
(the model's `_no_split_modules`) and, as the root, the rest (embeddings with a tied LM head, final
norm). The rollout engine needs whole weights: under FSDP2 each rank keeps a full copy for it
(`rollout_copy`), refreshed from the shards before each sync (`refresh`).
"""

from __future__ import annotations

import copy
import datetime
import os
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from chord_env.trainer import logprobs

T = TypeVar("T")
KINDS = ("ddp", "fsdp2")


def launched() -> bool:
    """Whether torchrun started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun); readable before `init`."""
    return int(os.environ.get("RANK", "0"))


def init() -> bool:
    """Join torchrun's process group if launched by it and not joined yet; returns whether it joined
    now (the caller then `close`s it)."""
    if not launched() or dist.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=datetime.timedelta(minutes=30))
    return True


def close() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this is rank 0, the one that logs, evaluates and writes."""
    return rank() == 0


def device() -> torch.device:
    """This rank's device: its GPU (LOCAL_RANK) on CUDA, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast(value: T) -> T:
    """Rank 0's `value` on every rank (any picklable object)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(items: list[T]) -> list[T]:
    """Every rank's `items`, concatenated in rank order, on every rank (picklable objects)."""
    if not dist.is_initialized():
        return list(items)
    out: list[list[T]] = [[] for _ in range(world_size())]
    dist.all_gather_object(out, list(items))
    return [item for part in out for item in part]


def my_share(items: list[T]) -> list[T]:
    """This rank's items r, r + W, ... (all of them in one process)."""
    return items[rank() :: world_size()]


def my_batches(batches: list[T], has_loss: list[bool]) -> list[tuple[T, float]]:
    """(micro-batch, weight) pairs this rank runs: its share of the batches that carry loss, weight W
    (the gradient reduction averages over the ranks), then, where it has fewer than the others, the
    first such batch again with weight 0, so every rank runs the same number of passes."""
    live = [b for b, loss in zip(batches, has_loss) if loss]
    mine = [(b, float(world_size())) for b in my_share(live)]
    rounds = -(-len(live) // world_size())
    return mine + [(live[0], 0.0) for _ in range(rounds - len(mine))]


def reduce_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The ranks' metrics combined: the mean of their share-weighted sums (each weighted by W, so the
    mean is the global value), the max of "sync/" maxima."""
    if not dist.is_initialized():
        return metrics
    parts: list[dict[str, float]] = [{} for _ in range(world_size())]
    dist.all_gather_object(parts, metrics)
    keys = dict.fromkeys(k for part in parts for k in part)
    return {k: max(p[k] for p in parts if k in p) if k.startswith("sync/") else sum(p.get(k, 0.0) for p in parts) / len(parts) for k in keys}


class TokenLogprobs(nn.Module):
    """The policy's token logprobs (`logprobs.token_logprobs`) as a module's forward, so that DDP and
    FSDP2, which hook `forward`, see every pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return logprobs.token_logprobs(self.model, *args, **kwargs)


def token_logprobs(model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
    """`logprobs.token_logprobs` of a bare model, or of a policy `wrap` made, through its forward."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, (DistributedDataParallel, TokenLogprobs)):
        return model(*args, **kwargs)
    return logprobs.token_logprobs(model, *args, **kwargs)


def is_sharded(module: nn.Module) -> bool:
    """Whether `module` is an FSDP2 module (its state is saved and loaded shard by shard)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def rollout_copy(model: nn.Module, kind: str) -> nn.Module:
    """The module the rollout engine, evaluation and the final save read: the model itself, or under
    FSDP2 with several ranks a full copy taken before sharding (kept current by `refresh`)."""
    return copy.deepcopy(model) if kind == "fsdp2" and dist.is_initialized() and world_size() > 1 else model


def wrap(model: nn.Module, kind: str) -> nn.Module:
    """The module the update trains: `model` itself in one process, else `TokenLogprobs(model)` under
    DDP (gradients all-reduced in each backward pass) or sharded by FSDP2 (`fully_shard` on every
    decoder layer, then on the root), gradients averaged over the ranks. Parameters of the returned
    module are those the optimizer takes."""
    if kind not in KINDS:
        raise ValueError(f"data_parallel must be one of {list(KINDS)}, got {kind!r}")
    if world_size() == 1:
        return model
    policy = TokenLogprobs(model)
    if kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device().index] if device().type == "cuda" else None
        return DistributedDataParallel(policy, device_ids=ids, forward_sync_buffers=False)  # no collective in no-grad forwards
    from torch.distributed.fsdp import FSDPModule, fully_shard

    layers = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in layers:
            fully_shard(module)
    sharded = fully_shard(policy)
    for module in sharded.modules():
        if isinstance(module, FSDPModule):
            module.set_force_sum_reduction_for_comms(True)  # SUM, then divide by W: gloo has no AVG
    return sharded


def refresh(target: nn.Module, policy: nn.Module) -> None:
    """Copy the sharded policy's full weights into `target` (its `rollout_copy`); a collective every
    rank calls. Nothing to do when `target` is the trained model itself."""
    if not is_sharded(policy):
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True))
    state = {name.removeprefix("model."): value for name, value in full.items()}
    missing, unexpected = target.load_state_dict(state, strict=False)
    own = target.state_dict()
    saved = {own[k].data_ptr() for k in state if k in own}
    if unexpected or any(own[k].data_ptr() not in saved for k in missing):
        raise RuntimeError(f"sharded weights do not fit the rollout copy: missing {missing}, unexpected {unexpected}")


def grad_norm(parameters: list[nn.Parameter]) -> float:
    """The global 2-norm of the parameters' gradients (FSDP2's sharded gradients included)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norm = torch.nn.utils.get_total_norm(grads)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def save_sharded(folder: Path, policy: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every rank writes its shards of the model and optimizer state into `folder`
    (`torch.distributed.checkpoint`); a collective."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(policy, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=folder)


def load_sharded(folder: Path, policy: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    """Load what `save_sharded` wrote (resharded to this run's ranks); a collective."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    if optimizer is None:
        raise ValueError(f"{folder}: a sharded checkpoint is loaded with its optimizer")
    model_state, optimizer_state = get_state_dict(policy, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=folder)
    set_state_dict(policy, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
