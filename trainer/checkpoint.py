"""Checkpoints a run can resume from after SIGKILL, and which a partial or damaged copy never impersonates.

Layout: `run_dir/checkpoints/step-000020/` holds `model/` (a Hugging Face model through
`save_pretrained`, safetensors; for a peft model, its adapter alone: `trainer/lora.py`) or `model.pt`
(any other `nn.Module`, its state_dict), `optimizer.pt`, `state.pt` (scheduler state, RNG states of
python, numpy, torch CPU and CUDA, the caller's `extra`: data position, metrics state...) and `COMPLETE`.
A sharded model (FSDP2 under torchrun, `trainer/distributed.py`) is saved instead as `sharded/`: the
model's and the optimizer's state as `torch.distributed.checkpoint` writes them, one file per rank plus
`.metadata` (the run folder must then be on a filesystem every rank sees); it resumes on any number of
ranks. Rank 0 writes everything else and the marker; under DDP the ranks' weights are equal and rank
0 writes the plain layout, which a single process resumes too.

Why a partial checkpoint cannot pass for a complete one: everything is written into a hidden
`.tmp-*` folder; each file and the folder are fsynced; `COMPLETE` is written last; only then is the
folder renamed to `step-*`, which is atomic on a POSIX filesystem. Old checkpoints are renamed to
`.tmp-*` before they are deleted, so a kill during deletion leaves nothing that looks complete either.

Why a copy cannot lie either: `COMPLETE` is a manifest, JSON `{"step", "files": {relative path:
{"size", "sha256"}}}` of every other file of the checkpoint. A copy that bypassed the rename (rsync
copies `COMPLETE` first, `cp -r` of a live run, a filesystem without atomic rename) or a file damaged
later fails the manifest: a file missing, of another size or hash, or a file the manifest does not
name. `latest_checkpoint` returns the newest checkpoint that passes, logs a warning naming each newer
one it passed over and why, and leaves those folders alone (nothing is deleted that a person may
want); `load_checkpoint` checks the manifest again and reports any file it cannot read with its path.

Markers written before manifests (the step number alone) are still accepted, so older runs resume,
but only after the checks possible without hashes: every file the layout needs is present, each
`.pt` file is a zip archive whose members match their CRC-32, each `.safetensors` file is exactly as
long as its header says. A warning says the checkpoint could not be fully verified.

One writer per run folder is assumed: `latest_checkpoint` deletes the `.tmp-*` folders it finds and
`step-*` folders without any marker. Files are loaded with `torch.load(weights_only=True)` (no
arbitrary unpickling), so `extra` must be plain data: dicts, lists, tuples, numbers, strings, None,
tensors. RNG states are stored as such.
"""
import hashlib
import json
import logging
import os
import random
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from chord_env.trainer import distributed
from chord_env.trainer.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_adapter

COMPLETE = "COMPLETE"
SHARDED = "sharded"
PREFIX = "step-"
TMP = ".tmp-"

log = logging.getLogger(__name__)


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
    main = distributed.is_main()
    tmp = distributed.broadcast(Path(tempfile.mkdtemp(prefix=f"{TMP}{final.name}-", dir=root)) if main else None)
    if distributed.is_sharded(model):
        distributed.save_sharded(tmp / SHARDED, model, optimizer)  # a collective: every rank writes its shards
    elif main:
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(tmp / "model")
        else:
            torch.save(model.state_dict(), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if not main:
        distributed.barrier()  # until rank 0 has written the rest and renamed the folder
        return final
    state = {
        "step": step,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": _rng_state(),
        "extra": extra,
    }
    torch.save(state, tmp / "state.pt")
    _fsync_tree(tmp)
    manifest = {"step": step, "files": {rel: {"size": f.stat().st_size, "sha256": _sha256(f)} for rel, f in _files(tmp).items()}}
    (tmp / COMPLETE).write_text(json.dumps(manifest, indent=1) + "\n")
    _fsync(tmp / COMPLETE)
    _fsync(tmp)
    if final.exists():
        _remove(final)
    tmp.rename(final)
    _fsync(root)
    for old in _complete(root)[:-keep]:
        _remove(old)
    distributed.barrier()
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of the run that passes its manifest, or None; deletes temporary folders and
    `step-*` folders without a marker, and logs a warning for each newer checkpoint it passes over."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    for path in root.iterdir():
        partial = path.name.startswith(PREFIX) and not (path / COMPLETE).is_file()
        if path.is_dir() and (path.name.startswith(TMP) or partial):
            shutil.rmtree(path, ignore_errors=True)
    for path in reversed(_complete(root)):
        problem = checkpoint_problem(path)
        if problem is None:
            if _is_legacy(path):
                log.warning("checkpoint %s: its marker predates manifests, so only its structure was checked", path)
            return path
        log.warning("checkpoint %s: skipped, %s; falling back to the previous complete checkpoint", path, problem)
    return None


def checkpoint_problem(path: str | Path) -> str | None:
    """Why checkpoint folder `path` is not a whole, intact checkpoint, or None if it is (module docstring)."""
    path = Path(path)
    try:
        text = (path / COMPLETE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return f"cannot read its {COMPLETE} marker ({e})"
    if _is_legacy(path, text):
        return _layout_problem(_files(path)) or _legacy_problem(path)
    try:
        files = json.loads(text)["files"]
        expected = {rel: (int(v["size"]), str(v["sha256"])) for rel, v in files.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return f"its {COMPLETE} marker is not a manifest"
    found = _files(path)
    if problem := _layout_problem(expected):
        return f"the manifest lacks a file: {problem}"
    for rel, (size, _) in expected.items():
        if rel not in found:
            return f"{rel} is missing"
        if (actual := found[rel].stat().st_size) != size:
            return f"{rel} has {actual} bytes, the manifest says {size}"
    for rel, (_, digest) in expected.items():
        if _sha256(found[rel]) != digest:
            return f"{rel} does not match the sha256 in the manifest"
    if unlisted := sorted(set(found) - set(expected)):
        return f"files the manifest does not name: {', '.join(unlisted)}"
    return None


def load_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, scheduler: Any | None
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and every RNG from checkpoint `path`; return its `extra`.

    Raises ValueError naming the checkpoint (and the file) if it has no marker, fails its manifest, or a
    file cannot be loaded into the objects given."""
    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise ValueError(f"checkpoint {path}: not a complete checkpoint (no {COMPLETE} marker)")
    if problem := checkpoint_problem(path):
        raise ValueError(f"checkpoint {path}: {problem}")
    sharded = (path / SHARDED).is_dir()
    if sharded:
        _load(path / SHARDED, lambda f: distributed.load_sharded(f, model, optimizer))  # a collective
    elif (path / "model" / ADAPTER_CONFIG).is_file():
        _load(path / "model" / ADAPTER_WEIGHTS, lambda f: load_adapter(model, f.parent))
    elif (path / "model").is_dir():
        _load_hf_weights(model, path / "model")
    else:
        _load(path / "model.pt", lambda f: model.load_state_dict(torch.load(f, map_location="cpu", weights_only=True)))
    if optimizer is not None and not sharded:
        _load(path / "optimizer.pt", lambda f: optimizer.load_state_dict(torch.load(f, map_location="cpu", weights_only=True)))
    state = _load(path / "state.pt", lambda f: torch.load(f, map_location="cpu", weights_only=True))
    if scheduler is not None:
        if state["scheduler"] is None:
            raise ValueError(f"checkpoint {path}: saved without a scheduler, but one was given")
        scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return state["extra"]


def _complete(root: Path) -> list[Path]:
    """Checkpoints under root that carry a marker (not yet verified), oldest first."""
    found = [p for p in root.glob(f"{PREFIX}*") if p.name[len(PREFIX) :].isdigit() and (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def _load_hf_weights(model: nn.Module, folder: Path) -> None:
    """Load save_pretrained's safetensors into `model`; keys it left out must be tied to saved ones."""
    from safetensors.torch import load_file

    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(_load(file, load_file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    saved_ptrs = {own[k].data_ptr() for k in state if k in own}
    untied = [k for k in missing if own[k].data_ptr() not in saved_ptrs]
    if untied or unexpected:
        raise ValueError(f"checkpoint {folder}: weights do not fit the model: missing {untied}, extra {unexpected}")


def _load(file: Path, load: Callable[[Path], Any]) -> Any:
    """load(file), any failure raised as one ValueError that names the file."""
    try:
        return load(file)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"checkpoint file {file}: cannot load it: {type(e).__name__}: {reason}") from e


def _files(folder: Path) -> dict[str, Path]:
    """Every file under a checkpoint folder but its marker, by path relative to it (POSIX separators)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != COMPLETE}


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _is_legacy(path: Path, text: str | None = None) -> bool:
    """Whether the marker is the step number alone, as written before manifests."""
    if text is None:
        try:
            text = (path / COMPLETE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False
    return text.strip().isdigit()


def _layout_problem(names: dict[str, Any]) -> str | None:
    """The first file the layout needs that `names` (relative paths) lacks, or None."""
    sharded = f"{SHARDED}/.metadata" in names
    has_model = sharded or "model.pt" in names or any(n.startswith("model/") and n.endswith(".safetensors") for n in names)
    for needed, present in (("model.pt or model/*.safetensors", has_model), ("optimizer.pt", sharded or "optimizer.pt" in names),
                            ("state.pt", "state.pt" in names)):
        if not present:
            return f"{needed} is missing"
    return None


def _legacy_problem(path: Path) -> str | None:
    """What the checks without a manifest find wrong: a `.pt` archive whose members fail their CRC-32, a
    `.safetensors` file whose length is not what its header says."""
    for rel, file in _files(path).items():
        try:
            if file.suffix == ".pt":
                with zipfile.ZipFile(file) as archive:
                    if (bad := archive.testzip()) is not None:
                        return f"{rel} is damaged (member {bad} fails its CRC)"
            elif file.suffix == ".safetensors":
                with file.open("rb") as f:
                    (length,) = struct.unpack("<Q", f.read(8))
                    header = json.loads(f.read(length))
                end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
                if file.stat().st_size != 8 + length + end:
                    return f"{rel} is truncated or padded (its header says {8 + length + end} bytes)"
        except (OSError, ValueError, KeyError, TypeError, struct.error, zipfile.BadZipFile) as e:
            return f"{rel} is damaged ({type(e).__name__}: {e})"
    return None


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
