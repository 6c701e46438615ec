"""Run metrics: JSON lines and TensorBoard scalars while training, PNG plots at the end.

Names are namespaced like CleanRL's: `loss/rl`, `loss/sft`, `chord/mu`, `chord/phi_mean`,
`reward/mean`, `reward/std`, `perf/tokens_per_s`, `perf/sync_s`. `run_dir/metrics.jsonl` gets one line
per step, `{"step": 3, "loss/rl": 0.12, ...}`, flushed at once so a killed run keeps every step it
logged; NaN and infinities are written as null (strict JSON that `jq` and pandas read).
TensorBoard events go to `run_dir/tensorboard/`.

Resuming: `MetricsLogger(run_dir, start_step=s)` drops the lines with step >= s that a killed run
logged after its last checkpoint, and starts TensorBoard with `purge_step=s`, which tells TensorBoard to
discard the old events from step s on, so neither keeps duplicates. `start_step` is the first step the
run will log (0 for a new run, which therefore starts a fresh metrics.jsonl).

Plots use matplotlib's object API (`Figure`, Agg canvas), never pyplot: no display needed and no change
to the backend of a process that imports us.
"""

import json
import math
import os
from collections import defaultdict
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

METRICS = "metrics.jsonl"


class MetricsLogger:
    """Append-only metrics of one run: metrics.jsonl plus TensorBoard, resumable at a step."""

    def __init__(self, run_dir: str | Path, start_step: int = 0):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / METRICS
        kept = [line for line in read_metrics(path) if line["step"] < start_step] if path.exists() else []
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(_line(row) for row in kept))
        os.replace(tmp, path)
        self._file = path.open("a")
        self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=start_step)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record `metrics` (name -> number) at optimizer step `step`."""
        row = {"step": step, **{name: float(value) for name, value in metrics.items()}}
        self._file.write(_line(row))
        self._file.flush()
        for name, value in row.items():
            if name != "step":
                self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._file.close()
        self._writer.close()


def _line(row: dict[str, float | None]) -> str:
    clean = {k: v if v is None or math.isfinite(v) else None for k, v in row.items()}
    return json.dumps(clean) + "\n"


def read_metrics(path: str | Path) -> list[dict[str, float | None]]:
    """The rows of a metrics.jsonl; a line torn by a kill (not JSON, no step) is skipped."""
    rows = []
    for text in Path(path).read_text().splitlines():
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def plot_metrics(run_dir: str | Path) -> list[Path]:
    """One PNG per namespace (loss, reward, chord, perf, ...) in run_dir/plots/, a panel per metric
    against step; missing values and NaN leave gaps. Returns the files written."""
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    series: dict[str, dict[str, tuple[list[int], list[float]]]] = defaultdict(dict)
    for row in read_metrics(run_dir / METRICS):
        for name, value in row.items():
            if name == "step" or not isinstance(value, (int, float, type(None))):
                continue
            namespace = name.split("/")[0] if "/" in name else "other"
            steps, values = series[namespace].setdefault(name, ([], []))
            steps.append(row["step"])
            values.append(math.nan if value is None else float(value))
    out = run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for namespace, metrics in sorted(series.items()):
        cols = min(len(metrics), 3)
        rows = math.ceil(len(metrics) / cols)
        fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, (name, (steps, values)) in zip(axes, sorted(metrics.items())):
            ax.plot(steps, values, marker="." if len(steps) < 50 else None)
            ax.set_title(name)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        for ax in axes[len(metrics) :]:
            ax.set_visible(False)
        path = out / f"{namespace}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    if "sft/phi_q50" in series.get("sft", {}):
        written.append(_plot_phi(series["sft"], out / "phi_distribution.png"))
    return written


def _plot_phi(sft: dict[str, tuple[list[int], list[float]]], path: Path) -> Path:
    """phi = p (1 - p) on the expert tokens over training: its median, the 25-75% and 10-90% bands,
    and the share of tokens with phi < 0.01 (`token_weights.phi_distribution`)."""
    from matplotlib.figure import Figure

    steps, median = sft["sft/phi_q50"]
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.subplots()
    for low, high, alpha in (("q10", "q90", 0.2), ("q25", "q75", 0.35)):
        ax.fill_between(steps, sft[f"sft/phi_{low}"][1], sft[f"sft/phi_{high}"][1], alpha=alpha, color="C0", label=f"{low}-{high}")
    ax.plot(steps, median, color="C0", label="median")
    ax.set_ylim(0, 0.26)
    ax.set_xlabel("step")
    ax.set_ylabel("phi = p (1 - p) on expert tokens")
    share = ax.twinx()
    share.plot(*sft["sft/phi_low"], color="C3", label="share phi < 0.01")
    share.set_ylim(0, 1)
    share.set_ylabel("share of tokens with phi < 0.01", color="C3")
    ax.legend(loc="upper left")
    fig.savefig(path, dpi=100)
    return path
