"""`chord-env compare`: several training methods at one budget, on the same data, seeds and held-out suites.

Each method is a config file in `configs/` (`sft`, `grpo`, `sft-then-grpo`, `chord-fixed-mu`,
`chord-mu`, `chord-phi`, ...) or any YAML path, laid over one base recipe (default `configs/demo.yaml`):
the method sets how the two losses are blended (`mu`, `token_weight`, ...) and the base sets
everything else. `base` is the untrained model.

What is held equal: the number of optimizer steps, the per-step batch (E expert traces and P x n
rollouts, whichever the method uses), the learning rate, the data (one build, the same expert mix and
task seeds) and the seeds. Wall time and update tokens are not equal (an SFT step costs no rollouts)
and are reported beside the scores. The cold-start schedules are aligned: `sft-then-grpo` switches
at the base recipe's `mu.hold_steps`, the step where CHORD starts blending, and an `sft-warmup`
method (`chord-phi-warm`) holds pure SFT exactly as long, so they differ only in what follows the
shared SFT phase.

The report (`report.md`, `summary.json`, `accuracy.png`, `curves.png`) holds the table with 95% Wilson
intervals, the curves of reward, training success, held-out success, mu, entropy, KL to the initial
model, SFT loss and the median phi on expert tokens over training, and the exact command.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from chord_env.apps.demo import CONFIGS, Score, build_data, chart, evaluate_model, logs_to, table  # noqa: E402

CURVES = ("reward/mean", "reward/accuracy", "eval/accuracy", "chord/mu", "policy/entropy", "grpo/kl_ref", "sft/nll", "sft/phi_q50")


def method_config(method: str, base: Path, out: Path) -> Path:
    """The base recipe with the method's keys laid over it, written to `out` (what the run uses)."""
    path = Path(method) if method.endswith((".yaml", ".yml")) else CONFIGS / f"{method}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"method {method!r}: no config {path}")
    base_recipe = yaml.safe_load(base.read_text()) or {}
    recipe = {**base_recipe, **(yaml.safe_load(path.read_text()) or {})}
    base_mu = base_recipe.get("mu")
    if isinstance(base_mu, dict) and "hold_steps" in base_mu:
        kind = recipe["mu"].get("kind")
        if kind == "switch":
            recipe["mu"] = {**recipe["mu"], "at": base_mu["hold_steps"]}
        elif kind == "sft-warmup":
            recipe["mu"] = {**recipe["mu"], "hold_steps": base_mu["hold_steps"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# {path.name} over {base.name} (chord-env compare)\n" + yaml.safe_dump(recipe, sort_keys=False))
    return out


def curves(runs: dict[str, Path], path: Path) -> Path:
    """Overlaid training curves of every method, one panel per metric."""
    from chord_env.trainer.metrics import read_metrics

    fig, axes = plt.subplots(2, 4, figsize=(20, 7.5))
    for ax, key in zip(axes.flat, CURVES):
        for name, run in runs.items():
            rows = [r for r in read_metrics(run / "metrics.jsonl") if r.get(key) is not None]
            if rows:
                ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=name)
        ax.set_title(key)
        ax.set_xlabel("step")
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(methods: list[str], out: str = "runs/compare", base: str | None = None, seed: int = 0,
         overrides: tuple[str, ...] = (), fc_rows: int = 3000, model_name: str = "smollm2-135m-instruct") -> int:
    from chord_env.models import cached_model_dir, prepare_model
    from chord_env.trainer.checkpoint import latest_checkpoint
    from chord_env.trainer.config import load_config
    from chord_env.trainer.metrics import read_metrics
    from chord_env.trainer.train import train

    run = Path(out)
    base_path = Path(base) if base else CONFIGS / "demo.yaml"
    print(f"chord-env compare: {', '.join(methods)} over {base_path.name}; logs in {run / 'compare.log'}")
    scores: dict[str, dict[str, Score]] = {}
    runs: dict[str, Path] = {}
    costs: dict[str, dict[str, float]] = {}
    with logs_to(run / "compare.log"):
        model = prepare_model(model_name, cached_model_dir(model_name, "fp32"), "fp32")
        expert = build_data(run / "data", fc_rows, seed)
        for method in methods:
            name = Path(method).stem
            if method == "base":
                print("base: evaluating the untrained model ...")
                scores[name] = evaluate_model(str(model), run / "eval" / name)
                continue
            folder = run / name
            if not (folder / "final" / "config.json").is_file():
                recipe = method_config(method, base_path, run / "recipes" / f"{name}.yaml")
                config = load_config(recipe, [f"model={model}", f"out={folder}", f"seed={seed}", expert, *overrides])
                print(f"{name}: training {config.steps} steps ...")
                began = time.perf_counter()
                train(config, resume=latest_checkpoint(folder) is not None)
                (folder / "wall_seconds.txt").write_text(f"{time.perf_counter() - began:.1f}\n")
            print(f"{name}: evaluating ...")
            scores[name] = evaluate_model(str(folder / "final"), run / "eval" / name)
            runs[name] = folder
            rows = read_metrics(folder / "metrics.jsonl")
            wall = folder / "wall_seconds.txt"
            costs[name] = {"wall_s": float(wall.read_text()) if wall.is_file() else float("nan"),
                           "update_s": sum(r.get("perf/update_s") or 0.0 for r in rows),
                           "rollout_s": sum(r.get("perf/rollout_s") or 0.0 for r in rows)}
    command = "chord-env compare " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else "chord-env compare"
    png = chart(scores, run / "accuracy.png", f"held-out accuracy by method ({base_path.name})")
    curve_png = curves(runs, run / "curves.png") if runs else None
    cost_lines = ["| method | wall s | update s | rollout s |", "|---|---|---|---|"]
    cost_lines += [f"| {k} | {c['wall_s']:.0f} | {c['update_s']:.0f} | {c['rollout_s']:.0f} |" for k, c in costs.items()]
    report = "\n\n".join([f"# chord-env compare\n\n`{command}`", table(scores), "\n".join(cost_lines),
                          f"![accuracy]({png.name})" + (f"\n\n![curves]({curve_png.name})" if curve_png else "")])
    (run / "report.md").write_text(report + "\n")
    (run / "summary.json").write_text(json.dumps({k: {s: v.__dict__ for s, v in col.items()} for k, col in scores.items()}, indent=2))
    print("\n" + table(scores) + "\n\n" + "\n".join(cost_lines) + f"\n\nreport: {run / 'report.md'}")
    return 0
