"""`data build|show`: files, splits, dataset card, loading with `datasets`, math experts, the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chord_env.envs import MathEnv
from chord_env.envs.data_build import build, task_from_json
from chord_env.envs.math_tasks import GENERATORS, math_task
from chord_env.envs.worlds import MAX_REWARD, world_env
from chord_env.tools.worlds import HELD_OUT

CLI = str(Path(sys.executable).parent / "chord-env")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    return out, build(out, n=20, seed=3, math_n=8)


def test_build_writes_splits_with_disjoint_seeds_and_held_out_worlds(built):
    out, report = built
    rows = {s: [json.loads(line) for line in (out / f"{s}.jsonl").open()] for s in ("train", "validation", "held_out", "math_train")}
    assert report["rows"]["train"] == len(rows["train"]) == 6 * 20 and len(rows["held_out"]) == 2 * 10
    assert not {r["world"] for r in rows["train"] + rows["validation"]} & set(HELD_OUT)
    assert {r["world"] for r in rows["held_out"]} == set(HELD_OUT)
    seeds = {s: {json.loads(r["task"])["info"]["seed"] for r in rows[s]} for s in ("train", "validation", "held_out")}
    assert max(seeds["train"]) < min(seeds["validation"]) and max(seeds["validation"]) < min(seeds["held_out"])
    card = (out / "README.md").read_text()
    for heading in ("Rows per split", "Tasks per pattern", "distinct tools called", "distinct request texts", "assistant turns per task"):
        assert heading in card


def test_rows_replay_to_full_reward_and_tool_results_come_from_execution(built):
    out, _ = built
    for line in (out / "validation.jsonl").open():
        row = json.loads(line)
        task = task_from_json(row["task"])
        env = world_env(row["world"])
        env.reset(options={"task": task})
        steps = [env.step(action) for action in task.expert]
        assert steps[-1][1] == pytest.approx(MAX_REWARD) and steps[-1][4]["success"]
        ids = [c["id"] for m in row["messages"] for c in m["tool_calls"]]
        assert ids == [m["tool_call_id"] for m in row["messages"] if m["role"] == "tool"]


def test_datasets_loads_the_folder(built, tmp_path):
    from datasets import load_dataset

    out, report = built
    data = load_dataset(str(out), cache_dir=str(tmp_path))
    assert {s: data[s].num_rows for s in data} == report["rows"]
    assert data["train"][0]["messages"][0]["role"] in ("system", "user")


def test_math_experts_are_verified_by_math_env():
    tasks = [math_task(g, s) for g in GENERATORS for s in range(3)]
    env = MathEnv(tasks=tasks)
    for task in tasks:
        env.reset(options={"task": task})
        assert env.step(task.expert[0])[1] == 1.0, task.id


def test_cli_data_build_and_show(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run([CLI, "data", "build", "--out", str(tmp_path), "--worlds", "bank", "travel", "--n", "4", "--math-n", "2"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "world tasks" in done.stderr and (tmp_path / "README.md").exists()
    shown = subprocess.run([CLI, "data", "show", str(tmp_path), "--count", "2"], capture_output=True, text=True, timeout=300, env=env)
    assert shown.returncode == 0 and shown.stdout.count("=== bank-") == 2 and "[assistant]" in shown.stdout
