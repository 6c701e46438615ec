"""Checkpoints a run can resume from after SIGKILL, and which a partial write never impersonates.

Layout: `run_dir/checkpoints/step-000020/` holds `model/` (a Hugging Face model through
`save_pretrained`, safetensors) or `model.pt` (any other `nn.Module`, its state_dict), `optimizer.pt`,
`state.pt` (scheduler state, RNG states of python, numpy, torch CPU and CUDA, the caller's `extra`:
data position, metrics state...) and `COMPLETE`.

Why a partial checkpoint cannot pass for a complete one: everything is written into a hidden
`.tmp-*` folder; each file and the folder are fsynced; `COMPLETE` is written last; only then is the
folder renamed to `step-*`, which is atomic on a POSIX filesystem. `latest_checkpoint` accepts a
`step-*` folder only if it holds `COMPLETE`, so a copy that bypassed the rename (rsync, `cp -r`,
filesystems without atomic rename) is still caught. Old checkpoints are renamed to `.tmp-*` before they
are deleted, so a kill during deletion leaves nothing that looks complete either.

One writer per run folder is assumed: `latest_checkpoint` deletes the `.tmp-*` folders it finds.
Files are loaded with `torch.load(weights_only=True)` (no arbitrary unpickling), so `extra` must be plain
data: dicts, lists, tuples, numbers, strings, None, tensors. RNG states are stored as such.
"""

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

COMPLETE = "COMPLETE"
PREFIX = "step-"
TMP = ".tmp-"


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    extra: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write checkpoint `step` atomically, keep the newest `keep` (>= 1) complete ones, return its folder."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP}{final.name}-", dir=root))
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(tmp / "model")
    else:
        torch.save(model.state_dict(), tmp / "model.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    state = {
        "step": step,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": _rng_state(),
        "extra": extra,
    }
    torch.save(state, tmp / "state.pt")
    _fsync_tree(tmp)
    (tmp / COMPLETE).write_text(f"{step}\n")
    _fsync(tmp / COMPLETE)
    _fsync(tmp)
    if final.exists():
        _remove(final)
    tmp.rename(final)
    _fsync(root)
    for old in _complete(root)[:-keep]:
        _remove(old)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of the run, or None; deletes partial and temporary folders."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    for path in root.iterdir():
        partial = path.name.startswith(PREFIX) and not (path / COMPLETE).is_file()
        if path.is_dir() and (path.name.startswith(TMP) or partial):
            shutil.rmtree(path, ignore_errors=True)
    complete = _complete(root)
    return complete[-1] if complete else None


def load_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, scheduler: Any | None
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and every RNG from checkpoint `path`; return its `extra`."""
    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise ValueError(f"checkpoint {path}: not a complete checkpoint (no {COMPLETE} marker)")
    if (path / "model").is_dir():
        _load_hf_weights(model, path / "model")
    else:
        model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    if scheduler is not None:
        if state["scheduler"] is None:
            raise ValueError(f"checkpoint {path}: saved without a scheduler, but one was given")
        scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return state["extra"]


def _complete(root: Path) -> list[Path]:
    """Complete checkpoints under root, oldest first."""
    found = [p for p in root.glob(f"{PREFIX}*") if p.name[len(PREFIX) :].isdigit() and (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def _load_hf_weights(model: nn.Module, folder: Path) -> None:
    """Load save_pretrained's safetensors into `model`; keys it left out must be tied to saved ones."""
    from safetensors.torch import load_file

    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    saved_ptrs = {own[k].data_ptr() for k in state if k in own}
    untied = [k for k in missing if own[k].data_ptr() not in saved_ptrs]
    if untied or unexpected:
        raise ValueError(f"checkpoint {folder}: weights do not fit the model: missing {untied}, extra {unexpected}")


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(rng: dict[str, Any]) -> None:
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"][: torch.cuda.device_count()])


def _remove(path: Path) -> None:
    """Delete a checkpoint folder: first an atomic rename to a temp name, so no half is left as step-*."""
    trash = path.with_name(f"{TMP}{path.name}-deleted-{os.getpid()}")
    path.rename(trash)
    shutil.rmtree(trash)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for dirpath, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath))
