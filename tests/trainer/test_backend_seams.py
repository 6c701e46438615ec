"""The trainer drives a backend by its declared `Capabilities`, not its name: two fake registered
backends (the HF backend on the tiny model, recording what the trainer asks of it) with opposite
declarations get opened, seeded, synced and parity-checked as they declare, in two-step GRPO runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vowel_env import ENV_ID

from chord_env.agents.backend import BACKENDS, Capabilities, register_backend
from chord_env.agents.hf_backend import HFBackend
from chord_env.trainer.config import load_config
from chord_env.trainer.metrics import read_metrics
from chord_env.trainer.train import task_seeds, train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class Recording(HFBackend):
    """HFBackend that remembers how it was opened, each generate call's seed, and each sync."""

    opened: list = []

    def __init__(self, model_or_dir, **options):
        super().__init__(model_or_dir, **options)
        self.seeds, self.syncs = [], 0
        Recording.opened.append((model_or_dir, options, self))

    def generate(self, prompts, params):
        self.seeds.append(params.seed)
        return super().generate(prompts, params)

    def update_weights(self, model):
        self.syncs += 1
        super().update_weights(model)


class OwnCopySeeded(Recording):
    capabilities = Capabilities(shares_weights=False, syncs_weights=True, per_request_seeds=True, checks_parity=True)


class SharedUnseeded(Recording):
    capabilities = Capabilities(shares_weights=True, syncs_weights=True, per_request_seeds=False, checks_parity=False)


@pytest.fixture
def registered():
    register_backend("own-copy-seeded", OwnCopySeeded)
    register_backend("shared-unseeded", SharedUnseeded)
    Recording.opened.clear()
    yield
    del BACKENDS["own-copy-seeded"], BACKENDS["shared-unseeded"]


def run(name, model_dir, out):
    config = load_config(CONFIGS / "grpo.yaml", [
        f"model={model_dir}", f"env={ENV_ID}", f"out={out}", f"backend={name}", "steps=2", "tasks_per_step=2",
        "rollout.group_size=4", "rollout.max_turn_tokens=1", "rollout.max_context=64", "micro_batch_tokens=512", "eval_every=0", "seed=5",
    ])
    run_dir = train(config)
    (model_or_dir, options, backend), = Recording.opened
    Recording.opened.clear()
    return config, read_metrics(run_dir / "metrics.jsonl"), model_or_dir, options, backend


def test_own_copy_seeded_backend_is_opened_on_the_folder_seeded_and_parity_checked(registered, tiny_model_dir, tmp_path):
    config, metrics, model_or_dir, options, backend = run("own-copy-seeded", tiny_model_dir, tmp_path / "a")
    assert model_or_dir == config.model and options == {"max_model_len": 64, "seed": 5}
    # one rollout round per step (one-token replies), seeded from the step's first task seed
    assert backend.seeds[:1] == [task_seeds(config, 0)[0] * 1000 + 1] and backend.seeds[-1] == task_seeds(config, 1)[0] * 1000 + 1
    assert backend.syncs == 1  # before step 2's rollouts, not before the first
    assert "sync/parity_max_diff" not in metrics[0] and metrics[1]["sync/parity_max_diff"] < 1e-4


def test_shared_unseeded_backend_gets_the_trainers_module_and_no_seeds_or_parity(registered, tiny_model_dir, tmp_path):
    _, metrics, model_or_dir, options, backend = run("shared-unseeded", tiny_model_dir, tmp_path / "b")
    assert isinstance(model_or_dir, torch.nn.Module) and options == {"max_model_len": 64, "seed": 5}
    assert set(backend.seeds) == {None} and backend.syncs == 1
    assert not any("sync/parity_max_diff" in m for m in metrics)
