"""`chord-env compare`: methods laid over one base recipe, and one end-to-end run on the tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chord_env.apps.compare import method_config
from chord_env.trainer.config import load_config
from chord_env.apps.demo import CONFIGS


def test_a_method_sets_the_blend_and_the_base_sets_the_rest(tmp_path):
    base = yaml.safe_load((CONFIGS / "demo.yaml").read_text())
    phi = load_config(method_config("chord-phi", CONFIGS / "demo.yaml", tmp_path / "phi.yaml"), ["model=m"])
    assert phi.token_weight == "phi" and phi.mu(0) == phi.mu(70) == 0.1
    assert phi.steps == base["steps"] and phi.lr == base["lr"] and phi.expert_per_step == base["expert_per_step"]
    switch = load_config(method_config("sft-then-grpo", CONFIGS / "demo.yaml", tmp_path / "s.yaml"), ["model=m"])
    hold = base["mu"]["hold_steps"]
    assert switch.mu(hold - 1) == 1.0 and switch.mu(hold) == 0.0  # switches where CHORD starts blending
    assert switch.second_stage_lr < switch.lr  # the GRPO stage: a fresh optimizer at a lower rate
    warm = load_config(method_config("chord-phi-warm", CONFIGS / "demo.yaml", tmp_path / "w.yaml"), ["model=m"])
    assert warm.mu(hold - 1) == 1.0 and warm.mu(hold) == warm.mu(base["steps"] - 1) == 0.1 and warm.token_weight == "phi"
    with pytest.raises(FileNotFoundError, match="no-such"):
        method_config("no-such", CONFIGS / "demo.yaml", tmp_path / "x.yaml")


@pytest.mark.slow
def test_compare_trains_evaluates_and_reports_every_method(tmp_path):
    cli = str(Path(sys.executable).parent / "chord-env")
    env = {"HF_HUB_OFFLINE": "1", "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "CHORD_ENV_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([cli, "compare", "--model", "tiny-random", "--methods", "base,sft", "--fc-rows", "40",
                           "--out", str(tmp_path), "steps=2", "checkpoint_every=0"],
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"base", "sft"} and summary["sft"]["bfcl/simple_python"]["total"] == 100
    report = (tmp_path / "report.md").read_text()
    assert "| held-out suite | base | sft |" in report and "chord-env compare" in report
    for png in ("accuracy.png", "curves.png"):
        assert (tmp_path / png).stat().st_size > 0
