"""Write `data/bfcl_agreement_outputs.json`: real model outputs on a stratified BFCL single-turn subset.

Two "models" answer the same cases:
- `smollm2`: SmolLM2-135M-Instruct (our offline checkpoint) through vLLM, greedy, rendered and
  decoded exactly as `chord-env eval` does (`agents.evaluate.evaluate`). It mostly fails.
- `perturbed`: the ground truth (`bfcl.ground_truth_calls`) in Hermes format, left exact for about
  a third of the cases and otherwise perturbed one way, drawn with a seeded generator: an argument
  dropped or changed, the function renamed, a call added or removed, the JSON cut short, the tags
  written without their newlines, arguments as a JSON string, or no call at all. It covers the
  passing cases and the decode edge cases SmolLM2 never reaches.

`test_bfcl_agreement.py` checks our verdict on every saved output against BFCL's own pipeline.
Run: `HF_HUB_OFFLINE=1 python tests/eval/make_bfcl_agreement_data.py` (needs vLLM; ~5 minutes on 2 cores).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

PER_CATEGORY = 15
SEED = 0
MAX_TOKENS = 192
OUT = Path(__file__).parent / "data" / "bfcl_agreement_outputs.json"
PERTURBATIONS = ("exact", "drop_argument", "change_value", "rename_function", "extra_call", "missing_call",
                 "truncated_json", "no_newlines", "string_arguments", "no_call")


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + " (changed)"
    if isinstance(value, list):
        return value + value[:1] if value else ["x"]
    if isinstance(value, dict):
        return {**value, "extra_key": 1}
    return "changed"


def perturbed_output(case, rng: np.random.Generator) -> tuple[str, str]:
    """A (kind, Hermes text) answer for `case`: the ground truth, or it perturbed one way."""
    from chord_env.envs import bfcl
    from chord_env.parsing import format_hermes
    from chord_env.types import ToolCall

    if bfcl.is_relevance(case.category):
        kind = str(rng.choice(["no_call", "call"]))
        return kind, "I cannot help with that." if kind == "no_call" else format_hermes([ToolCall(case.tools[0].name, {})])
    calls = copy.deepcopy(bfcl.ground_truth_calls(case))
    kind = "exact" if rng.random() < 0.35 else str(rng.choice(PERTURBATIONS[1:]))
    i = int(rng.integers(len(calls)))
    args = list(calls[i].arguments)
    if kind == "drop_argument" and args:
        del calls[i].arguments[args[int(rng.integers(len(args)))]]
    elif kind == "change_value" and args:
        key = args[int(rng.integers(len(args)))]
        calls[i].arguments[key] = _changed(calls[i].arguments[key])
    elif kind == "rename_function":
        calls[i] = ToolCall(calls[i].name + "_v2", calls[i].arguments)
    elif kind == "extra_call":
        calls.append(calls[i])
    elif kind == "missing_call":
        del calls[i]
    elif kind == "no_call":
        return kind, "Sure, here is the answer you asked for."
    text = format_hermes(calls)
    if kind == "truncated_json":
        text = text[: max(12, len(text) // 2)]
    elif kind == "no_newlines":
        text = text.replace("<tool_call>\n", "<tool_call>").replace("\n</tool_call>", "</tool_call>")
    elif kind == "string_arguments":
        text = "\n".join(
            f'<tool_call>\n{{"name": {json.dumps(c.name)}, "arguments": {json.dumps(json.dumps(c.arguments))}}}\n</tool_call>'
            for c in calls)
    return kind, text


def main() -> None:
    from transformers import AutoTokenizer

    from chord_env.agents.backend import SamplingParams
    from chord_env.agents.evaluate import bfcl_suite, evaluate, stratified_subset
    from chord_env.agents.vllm_backend import VLLMBackend
    from chord_env.chat import ChatRenderer
    from chord_env.envs import bfcl
    from chord_env.models import cached_model_dir, prepare_model

    model_dir = prepare_model("smollm2-135m-instruct", cached_model_dir("smollm2-135m-instruct"))
    cases = stratified_subset(bfcl_suite(), PER_CATEGORY, SEED)
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(model_dir))
    backend = VLLMBackend(model_dir, max_model_len=4096)
    try:
        results = evaluate(backend, renderer, cases, SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS),
                           max_prompt_tokens=4096 - MAX_TOKENS)
    finally:
        backend.close()
    by_id = {c.id: c for category in {c.category for c in cases} for c in bfcl.load_cases(category)}
    rng = np.random.default_rng(SEED)
    records = []
    for r in results:
        if r.outputs:
            records.append({"id": r.id, "category": r.category, "model": "smollm2", "kind": "model", "output": r.outputs[0]})
        kind, text = perturbed_output(by_id[r.id], rng)
        records.append({"id": r.id, "category": r.category, "model": "perturbed", "kind": kind, "output": text})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"model_dir": "smollm2-135m-instruct (prepare_model, fp32)", "max_tokens": MAX_TOKENS,
                               "per_category": PER_CATEGORY, "seed": SEED, "records": records}, indent=0, ensure_ascii=False))
    print(f"{len(records)} outputs -> {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
