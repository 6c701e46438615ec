"""Real learning on CPU: the tiny random model's reward rises under GRPO, SFT and CHORD-phi, and a
run killed with SIGKILL resumes to the same weights as an uninterrupted one.

The env ("Vowels") is chosen so that reward is reachable from a random policy: the reply is one token
and earns 1 if its first letter is a vowel. About a fifth of random replies do, so GRPO groups have
reward variance from the first step; the expert reply ("a e i o u ...") earns 1. (A dense reward,
the vowel share of an 8-token reply, barely moved in 12 steps: a random 49k-token policy spreads its
mass too thin for a few samples per step to shift a whole class of tokens.) The measure is greedy
evaluation on held-out task seeds before and after training.
"""

import json
import os
import signal
import subprocess
import time
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vowel_env import ENV_ID, WORDS

from chord_env.trainer.config import load_config
from chord_env.trainer.metrics import read_metrics
from chord_env.trainer.train import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

@pytest.fixture(scope="module")
def expert_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("expert") / "vowels.jsonl"
    with path.open("w") as f:
        for word in WORDS:
            messages = [{"role": "user", "content": f"Say something about the {word}."}, {"role": "assistant", "content": "a e i o u a e i o"}]
            f.write(json.dumps({"messages": messages, "tools": []}) + "\n")
    return path


def config_for(method, model, expert, out, *extra):
    return load_config(CONFIGS / f"{method}.yaml", [
        f"model={model}", f"env={ENV_ID}", f"expert={expert}", f"out={out}", "backend=hf",
        "tasks_per_step=4", "rollout.group_size=8", "expert_per_step=8", "rollout.max_turn_tokens=1", "rollout.max_context=64",
        "micro_batch_tokens=2048", "lr=5e-2", "eval_tasks=24", "seed=1", *extra,
    ])


@pytest.mark.slow
@pytest.mark.parametrize("method, steps", [("grpo", 10), ("sft", 5), ("chord-phi", 10)])
def test_reward_rises(method, steps, tiny_model_dir, expert_file, tmp_path):
    run = train(config_for(method, tiny_model_dir, expert_file, tmp_path / method, f"steps={steps}", f"eval_every={steps}"))
    before, after = [m["eval/mean"] for m in read_metrics(run / "metrics.jsonl") if "eval/mean" in m]
    # 24 held-out tasks: from ~0.2 to >= 0.6 is far outside binomial noise (p < 0.001)
    assert after >= max(0.6, before + 0.4), (method, before, after)
    assert (run / "plots").is_dir() and any((run / "plots").glob("*.png"))
    assert (run / "config.yaml").is_file()


def _train_cmd(*args):
    return [str(Path(sys.executable).parent / "chord-env"), "train", *args]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_weights(tiny_model_dir, expert_file, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    common = [
        "--config", str(CONFIGS / "chord-fixed-mu.yaml"), f"model={tiny_model_dir}", f"env={ENV_ID}", f"expert={expert_file}",
        "backend=hf", "tasks_per_step=2", "rollout.group_size=4", "expert_per_step=4", "rollout.max_turn_tokens=2", "rollout.max_context=64",
        "micro_batch_tokens=512", "lr=1e-2", "steps=4", "checkpoint_every=1", "seed=3",
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_train_cmd(*common, f"out={straight}"), env=env, check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen(_train_cmd(*common, f"out={killed}"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / "checkpoints" / "step-000002" / "COMPLETE"
    while not marker.exists():
        assert proc.poll() is None, "the run ended before its step-2 checkpoint"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(_train_cmd("--resume", str(killed)), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    final = lambda run: load_file(run / "checkpoints" / "step-000004" / "model" / "model.safetensors")  # noqa: E731
    a, b = final(straight), final(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    initial = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert any(not torch.equal(a[k], initial[k]) for k in a), "training changed nothing"
    steps = [m["step"] for m in read_metrics(killed / "metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 4


@pytest.mark.slow
def test_learned_mu_moves_and_survives_a_resume(tiny_model_dir, expert_file, tmp_path):
    config = config_for("chord-learned-mu", tiny_model_dir, expert_file, tmp_path / "lm", "steps=2", "checkpoint_every=1", "eval_every=0")
    run = train(config)
    mus = [m["chord/mu"] for m in read_metrics(run / "metrics.jsonl")]
    assert len(mus) == 2 and mus[0] != mus[1] and all(0.0 < m < 1.0 for m in mus)
    resumed = train(load_config(run / "config.yaml", ["steps=3"]), resume=True)
    after = [m["chord/mu"] for m in read_metrics(resumed / "metrics.jsonl")]
    assert after[:2] == mus and len(after) == 3


def test_sft_without_expert_traces_is_a_clear_error(tiny_model_dir, tmp_path):
    config = load_config(CONFIGS / "chord-phi.yaml", [f"model={tiny_model_dir}", f"env={ENV_ID}", f"out={tmp_path}", "backend=hf",
                                                      "rollout.max_turn_tokens=1", "rollout.max_context=64", "micro_batch_tokens=512"])
    with pytest.raises(ValueError, match="expert"):
        train(config)


def test_sft_then_grpo_starts_its_second_stage_with_a_fresh_optimizer(tiny_model_dir, expert_file, tmp_path):
    config = config_for("sft-then-grpo", tiny_model_dir, expert_file, tmp_path / "two", "steps=3", "mu.at=2",
                        "second_stage_lr=1e-3", "checkpoint_every=1", "eval_every=0")
    run = train(config)
    rows = read_metrics(run / "metrics.jsonl")
    assert [m["chord/mu"] for m in rows] == [1.0, 1.0, 0.0]
    assert [m["optim/lr"] for m in rows] == [5e-2, 5e-2, 1e-3]
    adam_steps = lambda step: {float(s["step"]) for s in torch.load(run / "checkpoints" / f"step-{step:06d}" / "optimizer.pt")["state"].values()}  # noqa: E731
    assert adam_steps(2) == {2.0} and adam_steps(3) == {1.0}  # AdamW's moments and step count restarted at the switch


def test_kl_to_the_initial_model_is_zero_before_the_first_update_and_grows(tiny_model_dir, expert_file, tmp_path):
    run = train(config_for("grpo", tiny_model_dir, expert_file, tmp_path / "kl", "steps=3", "eval_every=0", "checkpoint_every=0"))
    kl = [m["grpo/kl_ref"] for m in read_metrics(run / "metrics.jsonl")]
    assert abs(kl[0]) < 1e-6 and kl[-1] > 1e-4, kl  # step 0 samples from the initial weights themselves
