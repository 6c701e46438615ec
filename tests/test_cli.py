"""The command line, end to end in subprocesses: envs list/check, demo, bench envs (quick)."""

import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "chord-env")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": str(Path(sys.executable).parent)})


def test_envs_list_and_check_all():
    listed = run("envs", "list")
    assert listed.returncode == 0 and "chord/Calculator-v0" in listed.stdout
    checked = run("envs", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "13 passed, 0 failed" in checked.stdout


def test_envs_check_unknown_id_fails_clearly():
    checked = run("envs", "check", "chord/Nope-v0")
    assert checked.returncode == 1 and "could not make the env" in checked.stdout


def test_demo_plays_every_builtin_env_to_a_reward():
    demo = run("demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "| chord/Calculator-v0 | 1.1 |" in demo.stdout


@pytest.mark.slow
def test_bench_envs_quick_prints_every_measurement():
    bench = run("bench", "envs", "--quick")
    assert bench.returncode == 0, bench.stderr
    for row in ("env overhead per step", "hermes parser", "pythonic parser", "json parser", "2 vs 1 processes"):
        assert row in bench.stdout
