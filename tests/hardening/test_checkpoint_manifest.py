"""Checkpoints that cannot lie (issue 11, item 7): the COMPLETE marker carries a manifest (sizes and
sha256 of every file); an interrupted copy or a damaged file fails it, `latest_checkpoint` falls back
to the previous checkpoint with a warning naming the path and reason, and `load_checkpoint` reports
a bad file with its path instead of a raw torch error. Old markers (the step alone) still resume,
after the checks possible without hashes."""

import json
import logging
import shutil

import pytest
import torch
from torch import nn

from chord_env.trainer.checkpoint import checkpoint_problem, latest_checkpoint, load_checkpoint, save_checkpoint

LOGGER = "chord_env.trainer.checkpoint"


def make():
    torch.manual_seed(0)
    model = nn.Linear(8, 8)
    return model, torch.optim.AdamW(model.parameters())


@pytest.fixture()
def run(tmp_path):
    """A run folder with complete checkpoints at steps 1 and 2 (optimizer state filled by a step)."""
    model, optimizer = make()
    model(torch.randn(2, 8)).sum().backward()
    optimizer.step()
    for step in (1, 2):
        save_checkpoint(tmp_path, step, model, optimizer, None, {"step": step})
    return tmp_path


def step_dir(run, step):
    return run / "checkpoints" / f"step-{step:06d}"


def flip_byte(path, offset=-5):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_marker_is_a_manifest_of_every_file(run):
    manifest = json.loads((step_dir(run, 2) / "COMPLETE").read_text())
    assert manifest["step"] == 2
    assert set(manifest["files"]) == {"model.pt", "optimizer.pt", "state.pt"}
    for name, entry in manifest["files"].items():
        assert entry["size"] == (step_dir(run, 2) / name).stat().st_size and len(entry["sha256"]) == 64
    assert checkpoint_problem(step_dir(run, 2)) is None


def test_an_interrupted_copy_falls_back_to_the_previous_checkpoint(run, tmp_path_factory, caplog):
    copy = tmp_path_factory.mktemp("copy")
    shutil.copytree(run / "checkpoints", copy / "checkpoints")
    newest = step_dir(copy, 2)
    (newest / "optimizer.pt").write_bytes((newest / "optimizer.pt").read_bytes()[:100])  # rsync cut mid-file
    (newest / "state.pt").unlink()  # not copied yet
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert latest_checkpoint(copy) == step_dir(copy, 1)
    warning = caplog.text
    assert str(newest) in warning and "optimizer.pt has 100 bytes" in warning and "falling back" in warning
    assert newest.is_dir(), "a checkpoint that fails its manifest is left for a person to inspect"


def test_a_damaged_file_of_the_same_size_is_caught_by_its_hash(run, caplog):
    flip_byte(step_dir(run, 2) / "model.pt", offset=-200)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert latest_checkpoint(run) == step_dir(run, 1)
    assert "model.pt does not match the sha256" in caplog.text
    model, optimizer = make()
    with pytest.raises(ValueError, match=r"step-000002.*model\.pt does not match"):
        load_checkpoint(step_dir(run, 2), model, optimizer, None)
    assert load_checkpoint(step_dir(run, 1), model, optimizer, None) == {"step": 1}


def test_a_file_the_manifest_does_not_name_is_caught(run):
    (step_dir(run, 2) / "optimizer.pt.partial").write_bytes(b"x")
    assert "does not name: optimizer.pt.partial" in checkpoint_problem(step_dir(run, 2))
    assert latest_checkpoint(run) == step_dir(run, 1)


def test_no_intact_checkpoint_means_none(run):
    for step in (1, 2):
        (step_dir(run, step) / "state.pt").unlink()
    assert latest_checkpoint(run) is None


def legacy(run, step):
    """Turn a checkpoint's marker into one written before manifests: the step number alone."""
    (step_dir(run, step) / "COMPLETE").write_text(f"{step}\n")


def test_an_old_marker_still_resumes_with_a_warning(run, caplog):
    legacy(run, 1)
    legacy(run, 2)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert latest_checkpoint(run) == step_dir(run, 2)
    assert "predates manifests" in caplog.text
    model, optimizer = make()
    assert load_checkpoint(step_dir(run, 2), model, optimizer, None) == {"step": 2}


@pytest.mark.parametrize("damage", ["truncate", "flip", "missing"])
def test_an_old_marker_over_damaged_files_is_passed_over(run, damage, caplog):
    legacy(run, 1)
    legacy(run, 2)
    optimizer_file = step_dir(run, 2) / "optimizer.pt"
    if damage == "truncate":
        optimizer_file.write_bytes(optimizer_file.read_bytes()[:300])
    elif damage == "flip":  # inside a stored tensor: only its CRC-32 shows it
        data = optimizer_file.read_bytes()
        flip_byte(optimizer_file, offset=data.index(b"PK\x01\x02") - 40)
    else:
        optimizer_file.unlink()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert latest_checkpoint(run) == step_dir(run, 1)
    assert "optimizer.pt" in caplog.text and str(step_dir(run, 2)) in caplog.text


def test_a_hugging_face_checkpoint_with_damaged_weights_falls_back(tmp_path, caplog):
    from transformers import LlamaForCausalLM

    from chord_env.models import tiny_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(vocab_size=64, bos_token_id=1, eos_token_id=2))
    optimizer = torch.optim.AdamW(model.parameters())
    for step in (1, 2):
        save_checkpoint(tmp_path, step, model, optimizer, None, {"step": step})
    weights = step_dir(tmp_path, 2) / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert latest_checkpoint(tmp_path) == step_dir(tmp_path, 1)
    assert "model/model.safetensors has" in caplog.text
    legacy(tmp_path, 2)
    assert "model/model.safetensors is truncated" in checkpoint_problem(step_dir(tmp_path, 2))
    with pytest.raises(ValueError, match=r"step-000002.*model\.safetensors"):
        load_checkpoint(step_dir(tmp_path, 2), model, optimizer, None)
