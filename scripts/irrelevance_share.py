#!/usr/bin/env python3
"""How the share of irrelevance-shaped expert traces decides whether SFT teaches "no call" at all.

One run: build catalogue traces (`envs/function_tasks.py`) with the irrelevance shape weighted `--share`
against the other shapes' default weights, train SmolLM2-135M-Instruct on them with plain SFT for
`--steps` steps of the demo's recipe (configs/demo.yaml with mu = 1: no rollouts), then measure on the
catalogue's validation split (functions never trained on, never BFCL):

- greedy success on 100 tasks of the default shape mix, per shape, and on 40 irrelevance tasks;
- the decision itself: the probability that the first response token opens a tool call (`<`, the
  first token of `<tool_call>`), averaged per shape over 150 validation tasks, and the fraction of
  tasks where it exceeds 1/2 (there greedy decoding surely calls a function).

    HF_HUB_OFFLINE=1 python scripts/irrelevance_share.py --out runs/irr-0.5 --share 0.5

Writes `result.json` into `--out`; a rerun reuses the data and the trained model. About 10 minutes on
2 CPU cores. The numbers are in docs/results.md ("Irrelevance and the data mix").
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from functools import partial
from pathlib import Path

EVAL_SUITES = {"mix": (None, 100), "irrelevance": ({"irrelevance": 1.0}, 40)}
PROBE_TASKS = 150


def train_model(out: Path, share: float, steps: int) -> Path:
    """SFT on traces with irrelevance weight `share`; returns the trained model folder."""
    from chord_env.envs.data_build import build_function_rows
    from chord_env.envs.function_tasks import SHAPES
    from chord_env.models import cached_model_dir, prepare_model
    from chord_env.trainer.config import load_config
    from chord_env.trainer.recipes import CONFIGS
    from chord_env.trainer.train import train

    model = prepare_model("smollm2-135m-instruct", cached_model_dir("smollm2-135m-instruct", "fp32"), "fp32")
    if not (out / "data" / "fc_train.jsonl").is_file():
        print(build_function_rows(out / "data", n=3000, seed=0, weights={**SHAPES, "irrelevance": share}))
    final = out / "train" / "final"
    if not (final / "config.json").is_file():
        train(load_config(CONFIGS / "demo.yaml", [
            f"model={model}", f"out={out / 'train'}", "seed=0", f"expert={out / 'data' / 'fc_train.jsonl'}",
            f"steps={steps}", "eval_every=0", "checkpoint_every=0", "mu.kind=constant", "mu.value=1.0",
        ]))
    return final


def greedy_success(model_dir: Path) -> dict[str, dict[str, str]]:
    """Solved/total per shape on the validation split, greedy, as the demo's evaluation plays it."""
    from transformers import AutoTokenizer

    import chord_env
    from chord_env.agents.backend import open_backend
    from chord_env.apps.demo import play_greedy
    from chord_env.chat import ChatRenderer

    renderer = ChatRenderer(AutoTokenizer.from_pretrained(model_dir))
    backend = open_backend(str(model_dir), max_model_len=2048)
    result = {}
    try:
        for name, (weights, n) in EVAL_SUITES.items():
            make = partial(chord_env.make, "chord/FunctionCatalog-v0", split="validation", **({"weights": weights} if weights else {}))
            solved: dict[str, list[bool]] = defaultdict(list)
            for t in play_greedy(backend, renderer, make, n):
                solved[t.task_id.split("-")[2]].append(bool(t.success))  # task ids are fc-SPLIT-SHAPE-SEED
            result[name] = {s: f"{sum(v)}/{len(v)}" for s, v in solved.items()}
            print(name, result[name], flush=True)
    finally:
        backend.close()
    return result


def call_probability(model_dir: Path) -> dict[str, dict[str, float]]:
    """Per shape: mean p(first response token opens a tool call) and the share of tasks where it exceeds 1/2."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chord_env.chat import ChatRenderer
    from chord_env.envs.function_tasks import VALIDATION_SEEDS, task_for_seed
    from chord_env.parsing import HERMES_OPEN
    from chord_env.types import Message

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    renderer = ChatRenderer(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    call_token = tokenizer(HERMES_OPEN, add_special_tokens=False)["input_ids"][0]
    start = VALIDATION_SEEDS.start + 500_000
    p_call: dict[str, list[float]] = defaultdict(list)
    for seed in range(start, start + PROBE_TASKS):
        task = task_for_seed(seed, "validation")
        text = renderer.render_text([Message(role="user", content=task.prompt)], task.tools, True)
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            p_call[task.info["shape"]].append(model(ids).logits[0, -1].softmax(-1)[call_token].item())
    return {s: {"n": len(p), "mean_p_call": round(float(np.mean(p)), 3), "share_over_half": round(float(np.mean(np.array(p) > 0.5)), 2)}
            for s, p in p_call.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--share", type=float, required=True, help="irrelevance weight (the other shapes keep SHAPES')")
    parser.add_argument("--steps", type=int, default=48)
    args = parser.parse_args()
    final = train_model(args.out, args.share, args.steps)
    result = {"greedy": greedy_success(final), "p_call": call_probability(final)}
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["p_call"], indent=2))


if __name__ == "__main__":
    main()
