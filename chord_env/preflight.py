"""Checks `chord-env train` runs before it loads a model or writes anything, so a mistake costs nothing.

`check_train` checks, in this order (the first three are `check_inputs`), and raises one `PreflightError` (a one-line message) at the first
problem: the model folder (`models.check_model_dir`: no Hugging Face Hub id is ever looked up), every
env id of the mix is registered, the expert files (when the schedule has an SFT term) exist and every
row passes the importer's checks, and the run folder. A fresh run needs a run folder that is missing
or empty; a non-empty one is refused unless `overwrite`, and even then only if it is a run folder (it
holds `config.yaml`), whose contents `prepare_run_dir` then deletes, after every check has passed. A
resumed run needs the folder's `config.yaml` and a complete checkpoint.

`chord-env demo` and `chord-env compare` reuse and resume their own run folders on purpose and call
`train` directly; these checks are the CLI's, for runs an operator starts by hand.
"""

from __future__ import annotations

import difflib
import importlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chord_env.trainer.config import TrainConfig

SHOWN = 5
"""entries named in a message (folder contents, bad rows)"""


class PreflightError(ValueError):
    """A command's inputs are wrong; nothing was loaded or written."""


def check_model(path: str | Path) -> None:
    """The model folder exists and holds config, weights, tokenizer and chat template."""
    from chord_env.models import check_model_dir

    try:
        check_model_dir(path)
    except (FileNotFoundError, ValueError) as e:
        raise PreflightError(str(e)) from None


def check_envs(env: str | dict[str, float]) -> None:
    """Every env id of the mix is registered."""
    import gymnasium as gym

    import chord_env
    from chord_env.envs.mixture import mix_weights

    for spec in mix_weights(env):
        module, _, env_id = spec.rpartition(":")  # gymnasium's "module:id" imports the module that registers id
        if module:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise PreflightError(f"env {spec!r}: cannot import {module!r} ({e})") from None
        if env_id not in gym.envs.registry:
            close = difflib.get_close_matches(env_id, chord_env.list(), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "`chord-env envs list` shows the registered ones"
            raise PreflightError(f"env {env_id!r} is not registered; {hint}")


def uses_sft(config: TrainConfig) -> bool:
    """Whether some step of the run has an SFT term (mu > 0), so it needs expert traces."""
    return config.learned_mu or any(config.mu(step) > 0 for step in range(config.steps))


def check_expert(config: TrainConfig) -> None:
    """With an SFT term: expert files are given, exist, and every row passes the importer's checks."""
    from chord_env.data_import import import_file
    from chord_env.envs.mixture import mix_weights

    if not uses_sft(config):
        return
    if not config.expert:
        raise PreflightError("this config has mu > 0 (an SFT term) but no expert traces: set expert=PATH")
    for path in mix_weights(config.expert):
        if not Path(path).is_file():
            raise PreflightError(f"expert traces {path}: no such file")
        report = import_file(path, "openai")
        if report.errors:
            shown = "; ".join(f"row {n}: {reason}" for n, reason in report.errors[:SHOWN])
            more = f"; and {report.skipped - SHOWN} more" if report.skipped > SHOWN else ""
            raise PreflightError(f"expert traces {path}: {report.skipped} of {report.read} rows are bad "
                                 f"(row N is line N; `chord-env data import` lists them all): {shown}{more}")
        if not report.rows:
            raise PreflightError(f"expert traces {path}: no rows")


def check_run_dir(path: str | Path, resume: bool, overwrite: bool) -> None:
    """The run folder can take this run: see the module docstring."""
    folder = Path(path)
    if resume:
        from chord_env.trainer.checkpoint import latest_checkpoint

        if not (folder / "config.yaml").is_file():
            raise PreflightError(f"cannot resume {folder}: it is not a run folder (no config.yaml)")
        if latest_checkpoint(folder) is None:
            raise PreflightError(f"cannot resume {folder}: it has no complete checkpoint")
        return
    if folder.exists() and not folder.is_dir():
        raise PreflightError(f"run folder {folder} is a file")
    contents = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if not contents:
        return
    listing = ", ".join(contents[:SHOWN]) + (", ..." if len(contents) > SHOWN else "")
    if not overwrite:
        raise PreflightError(f"run folder {folder} is not empty ({listing}): give --resume {folder} to continue "
                             "that run, --overwrite to replace it, or another out=")
    if "config.yaml" not in contents:
        raise PreflightError(f"run folder {folder} is not empty ({listing}) and is not a run folder (no config.yaml): "
                             "refusing to delete it, even with --overwrite")


def check_inputs(config: TrainConfig) -> None:
    """What a run reads: the model folder, the env ids, the expert traces; safe for any caller of `train`."""
    check_model(config.model)
    check_envs(config.env)
    check_expert(config)


def check_train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> None:
    """Every check of the module docstring, in its order; writes nothing."""
    check_inputs(config)
    check_run_dir(config.out, resume, overwrite)


def prepare_run_dir(path: str | Path) -> None:
    """Empty a run folder `check_run_dir(path, resume=False, overwrite=True)` accepted."""
    folder = Path(path)
    for entry in folder.iterdir() if folder.is_dir() else ():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
