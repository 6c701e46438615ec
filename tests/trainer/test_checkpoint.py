"""Checkpoints (trainer/checkpoint.py): exact resume, atomic writes under SIGKILL, retention."""

import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from chord_env.trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def make(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
    return model, optimizer, scheduler


def train(model, optimizer, scheduler, steps: int) -> None:
    """Steps that draw from every RNG a checkpoint restores: torch (data, dropout), numpy, python."""
    for _ in range(steps):
        x = torch.randn(8, 4)
        y = x.sum(-1, keepdim=True) + torch.from_numpy(np.random.randn(8, 1)).float() * random.random()
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_resume_gives_the_same_weights_exactly(tmp_path):
    seed_all(0)
    model, optimizer, scheduler = make(0)
    train(model, optimizer, scheduler, 2)
    path = save_checkpoint(tmp_path, 2, model, optimizer, scheduler, {"data_position": 16, "step": 2})
    train(model, optimizer, scheduler, 2)
    w4 = {k: v.clone() for k, v in model.state_dict().items()}

    seed_all(123)
    model, optimizer, scheduler = make(1)
    assert latest_checkpoint(tmp_path) == path
    extra = load_checkpoint(path, model, optimizer, scheduler)
    assert extra == {"data_position": 16, "step": 2}
    train(model, optimizer, scheduler, 2)
    for key, value in model.state_dict().items():
        assert torch.equal(value, w4[key]), key
    assert scheduler.last_epoch == 4


def test_hugging_face_model_round_trips_with_tied_weights(tmp_path):
    from transformers import LlamaForCausalLM

    from chord_env.models import tiny_config

    config = tiny_config(vocab_size=96, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 5, 7]]), labels=torch.tensor([[1, 5, 7]])).loss.backward()
    optimizer.step()
    path = save_checkpoint(tmp_path, 1, model, optimizer, None, {})
    assert (path / "model" / "config.json").is_file() and list((path / "model").glob("*.safetensors"))

    torch.manual_seed(1)
    fresh = LlamaForCausalLM(config)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    load_checkpoint(path, fresh, fresh_optimizer, None)
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key
    assert fresh.lm_head.weight.data_ptr() == fresh.model.embed_tokens.weight.data_ptr()
    assert fresh_optimizer.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


def test_keeps_the_last_k_and_overwrites_a_step(tmp_path):
    model, optimizer, scheduler = make(0)
    for step in range(1, 5):
        save_checkpoint(tmp_path, step, model, optimizer, scheduler, {"step": step}, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000003", "step-000004"]
    save_checkpoint(tmp_path, 4, model, optimizer, scheduler, {"step": "again"}, keep=2)
    assert load_checkpoint(latest_checkpoint(tmp_path), model, optimizer, scheduler) == {"step": "again"}
    with pytest.raises(ValueError, match="keep"):
        save_checkpoint(tmp_path, 5, model, optimizer, scheduler, {}, keep=0)


def test_half_written_folders_are_ignored_and_cleaned(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    model, optimizer, scheduler = make(0)
    good = save_checkpoint(tmp_path, 2, model, optimizer, scheduler, {})
    root = tmp_path / "checkpoints"
    (root / "step-000003").mkdir()  # renamed by hand or copied without its marker
    torch.save(model.state_dict(), root / "step-000003" / "model.pt")
    (root / ".tmp-step-000004-abc").mkdir()  # a writer killed mid-way
    (root / ".tmp-step-000004-abc" / "COMPLETE").write_text("4\n")
    assert latest_checkpoint(tmp_path) == good
    assert [p.name for p in root.iterdir()] == ["step-000002"]
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        (root / "step-000009").mkdir()
        load_checkpoint(root / "step-000009", model, optimizer, scheduler)


CHILD = textwrap.dedent(
    """
    import sys, time, torch
    from torch import nn
    from chord_env.trainer import checkpoint

    run_dir = sys.argv[1]
    model = nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(model.parameters())
    checkpoint.save_checkpoint(run_dir, 1, model, optimizer, None, {"step": 1})
    save = torch.save

    def slow_save(obj, path):
        if str(path).endswith("optimizer.pt"):
            with open(path, "wb") as f:
                f.write(b"half an optimizer")
                f.flush()
            print("writing", flush=True)
            time.sleep(60)
        save(obj, path)

    checkpoint.torch.save = slow_save
    checkpoint.save_checkpoint(run_dir, 2, model, optimizer, None, {"step": 2})
    """
)


def test_sigkill_while_writing_leaves_the_previous_checkpoint(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
        assert any(p.name.startswith(".tmp-step-000002") for p in (tmp_path / "checkpoints").iterdir())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    latest = latest_checkpoint(tmp_path)
    assert latest == tmp_path / "checkpoints" / "step-000001"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000001"]
    model = nn.Linear(64, 64)
    assert load_checkpoint(latest, model, torch.optim.AdamW(model.parameters()), None) == {"step": 1}
