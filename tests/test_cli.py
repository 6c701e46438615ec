"""The command line, end to end in subprocesses: envs list/check, demo, bench envs (quick)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chord_env.registry import BUILTINS

CLI = str(Path(sys.executable).parent / "chord-env")
# the venv first, then the system's tools (vLLM's CPU worker runs `lscpu`)
ENV = {"HF_HUB_OFFLINE": "1", "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=600, env=ENV)


def test_envs_list_and_check_all():
    listed = run("envs", "list")
    assert listed.returncode == 0 and "chord/Calculator-v0" in listed.stdout
    checked = run("envs", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(BUILTINS)} passed, 0 failed" in checked.stdout


def test_envs_check_unknown_id_fails_clearly():
    checked = run("envs", "check", "chord/Nope-v0")
    assert checked.returncode == 1 and "could not make the env" in checked.stdout


@pytest.mark.slow
def test_bench_envs_quick_prints_every_measurement():
    bench = run("bench", "envs", "--quick")
    assert bench.returncode == 0, bench.stderr
    for row in ("env overhead per step", "hermes parser", "pythonic parser", "json parser", "2 vs 1 processes"):
        assert row in bench.stdout


@pytest.mark.slow
def test_demo_runs_every_stage_on_the_tiny_model_and_a_rerun_reuses_them(tmp_path):
    command = [CLI, "demo", "--model", "tiny-random", "--fc-rows", "40", "--out", str(tmp_path),
               "steps=3", "mu.hold_steps=1", "mu.decay_steps=1", "tasks_per_step=2", "rollout.group_size=2", "checkpoint_every=0"]
    env = {**ENV, "CHORD_ENV_CACHE": str(tmp_path / "cache")}
    demo = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "| held-out suite | before | after |" in demo.stdout and "bfcl/simple_python" in demo.stdout
    log = (tmp_path / "demo.log").read_text()  # engine and library logs go to the log file
    assert "EngineCore" in log and "INFO vllm" in log
    assert "EngineCore" not in demo.stdout + demo.stderr and "INFO" not in demo.stdout + demo.stderr
    for path in ("train/metrics.jsonl", "train/config.yaml", "train/final/config.json", "eval/before/scores.json",
                 "eval/after/scores.json", "eval/after/bfcl.jsonl", "before_after.png", "results.md"):
        assert (tmp_path / path).is_file(), path
    assert any((tmp_path / "train" / "plots").glob("*.png"))
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "training: reusing" in again.stdout, again.stdout[-3000:] + again.stderr[-3000:]
    assert (tmp_path / "results.md").read_text() in again.stdout
