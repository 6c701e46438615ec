"""Metrics (trainer/metrics.py): JSON lines and TensorBoard agree, resume leaves no duplicates, plots."""

import json
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from chord_env.trainer.metrics import MetricsLogger, plot_metrics, read_metrics


def scalars(run_dir) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def row(step: int, scale: float = 1.0) -> dict[str, float]:
    return {"loss/rl": scale * step, "chord/mu": 0.1, "reward/mean": scale * step / 10, "perf/sync_s": 0.5}


def test_log_writes_jsonl_and_tensorboard(tmp_path):
    logger = MetricsLogger(tmp_path)
    for step in range(5):
        logger.log(step, row(step))
        assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["step"] == step  # flushed
    logger.log(5, {"loss/sft": math.nan, "reward/std": math.inf})
    logger.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[:5] == [{"step": step, **row(step)} for step in range(5)]
    assert lines[5] == {"step": 5, "loss/sft": None, "reward/std": None}
    tb = scalars(tmp_path)
    assert tb["loss/rl"] == {step: float(step) for step in range(5)}
    assert tb["chord/mu"][4] == pytest.approx(0.1) and tb["reward/mean"][3] == pytest.approx(0.3)  # float32
    assert math.isnan(tb["loss/sft"][5])


def test_resume_drops_what_a_killed_run_logged_after_its_checkpoint(tmp_path):
    killed = MetricsLogger(tmp_path)
    for step in range(5):
        killed.log(step, row(step))
    killed.close()
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "loss/r')  # torn by SIGKILL
    resumed = MetricsLogger(tmp_path, start_step=3)
    for step in range(3, 6):
        resumed.log(step, row(step, scale=2.0))
    resumed.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [r["loss/rl"] for r in rows] == [0.0, 1.0, 2.0, 6.0, 8.0, 10.0]
    assert scalars(tmp_path)["loss/rl"] == {0: 0.0, 1: 1.0, 2: 2.0, 3: 6.0, 4: 8.0, 5: 10.0}
    MetricsLogger(tmp_path).close()  # a new run (start_step 0) starts a fresh log
    assert read_metrics(tmp_path / "metrics.jsonl") == []


def test_plots_are_png_files_one_per_namespace(tmp_path):
    logger = MetricsLogger(tmp_path)
    for step in range(6):
        metrics = row(step)
        if step % 2:
            del metrics["reward/mean"]  # missing at some steps
        metrics["loss/sft"] = math.nan if step == 2 else 1.0 / (step + 1)
        metrics["tokens"] = 100.0 * step  # no namespace
        logger.log(step, metrics)
    logger.log(6, {"perf/tokens_per_s": math.nan})  # a metric that is never finite
    logger.close()
    paths = plot_metrics(tmp_path)
    assert sorted(p.name for p in paths) == ["chord.png", "loss.png", "other.png", "perf.png", "reward.png"]
    for path in paths:
        data = path.read_bytes()
        assert path.parent == tmp_path / "plots"
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_the_phi_distribution_gets_a_plot_of_its_own(tmp_path):
    logger = MetricsLogger(tmp_path)
    for step in range(4):
        quantiles = {f"sft/phi_q{q}": 0.01 * q / 10 + 0.001 * step for q in (10, 25, 50, 75, 90)}
        logger.log(step, {**quantiles, "sft/phi_low": 0.5 - 0.1 * step})
    logger.close()
    paths = plot_metrics(tmp_path)
    assert sorted(p.name for p in paths) == ["phi_distribution.png", "sft.png"]
    assert (tmp_path / "plots" / "phi_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
