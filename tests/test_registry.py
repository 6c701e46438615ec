"""The registry: built-ins, gymnasium.make, the env checker on every env, and third-party plugins."""

import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest

import chord_env
from chord_env.env_check import check

BIN = Path(sys.executable).parent


def test_builtins_are_listed_and_made_through_either_api():
    ids = chord_env.list()
    assert {"chord/Arithmetic-v0", "chord/Calculator-v0", "chord/FunctionCall-v0"} <= set(ids)
    env = gym.make("chord/Calculator-v0")
    obs, info = env.reset(seed=1)
    assert obs[0].role == "user" and info["tools"][0].name == "calculator"
    assert chord_env.make("Calculator-v0").reset(seed=1)[0] == obs


@pytest.mark.parametrize("env_id", sorted(chord_env.registry.BUILTINS))
def test_env_checker_and_scripted_episode_pass(env_id):
    report = check(env_id)
    assert report.ok, report.problems
    assert report.scripted and report.reward > 0


def test_register_a_custom_env_and_check_it():
    chord_env.register("Custom-v0", "chord_env.envs.builtin:calculator_env", max_turns=3)
    assert "chord/Custom-v0" in chord_env.list()
    assert chord_env.make("chord/Custom-v0").unwrapped.max_turns == 3


def test_check_reports_a_broken_env_in_plain_words():
    chord_env.register("Broken-v0", "no_such_module:make")
    report = check("chord/Broken-v0")
    assert not report.ok and "could not make the env" in report.problems[0]


PLUGIN = '''
"""A third-party env package: its only link to chord-env's registry is an entry point."""
from chord_env.envs import Task, ToolEnv
from chord_env.parsing import format_hermes
from chord_env.tools import tool
from chord_env.types import ToolCall


@tool
def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: what to shout.
    """
    return text.upper()


def make_env():
    call = format_hermes([ToolCall("shout", {"text": "hi"})])
    return ToolEnv(tools=[shout], tasks=[Task(prompt="Shout hi.", answer="HI", expert=[call, "HI"])])
'''


@pytest.mark.slow
def test_a_separately_installed_package_adds_an_env(tmp_path):
    pkg = tmp_path / "shout_pkg"
    pkg.mkdir()
    (pkg / "shout_env.py").write_text(PLUGIN)
    (pkg / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "shout-env"
        version = "0.1.0"
        [project.entry-points."chord_env.envs"]
        "Shout-v0" = "shout_env:make_env"
        [tool.setuptools]
        py-modules = ["shout_env"]
    '''))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(pkg)],
        check=True, capture_output=True, text=True,
    )
    env = {"PYTHONPATH": str(target), "PATH": str(BIN), "HF_HUB_OFFLINE": "1"}
    listed = subprocess.run([str(BIN / "chord-env"), "envs", "list"], env=env, capture_output=True, text=True, check=True)
    assert "chord/Shout-v0" in listed.stdout.split()
    checked = subprocess.run([str(BIN / "chord-env"), "envs", "check", "chord/Shout-v0"], env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "chord/Shout-v0: OK" in checked.stdout and "1 passed, 0 failed" in checked.stdout
