#!/usr/bin/env python3
"""The GPU check: one command for a bare CUDA machine (torch, no vLLM, no network) that fits a 10-minute
window and prints one JSON summary. Nothing in the test suite depends on it; its numbers go to
docs/results.md.

On the GPU machine, from the repository root, with the folder `pack` made beforehand (see below):

    python3 scripts/gpu_check.py --carried .gpu --out gpu_check.json

Parts, each reported as {"status": "ok" | "failed" | "skipped", ...}; none stops the others:

1. `install`: the wheels in `CARRIED/wheels` (`pip install --no-index --no-deps --target SITE`, put first
   on `sys.path` and `PYTHONPATH`), then this repository itself (`pip install --no-deps
   --no-build-isolation --target SITE .`) unless `chord_env` already imports. Reports what each later
   part needs and is still missing; such a part is skipped, naming the modules.
2. `cuda_tests`: the CUDA cases of tests/cuda (`pytest -m cuda`; their CPU cases run in `make test`),
   with chord-env's cache pointed at the carried tokenizer (the machine has no SmolLM2 GGUF to convert
   one from).
3. `bench_trainer`: `chord_env.bench.trainer.run_bench` (what `chord-env bench trainer` runs): our GRPO
   update against TRL's GRPOTrainer doing the same update, each in its own process, bf16 autocast over
   fp32 master weights, on a random-init model of SmolLM2's family widened to ~0.5B (`SMOL_05B`).
   Tokens/s of each side and MFU against the card's dense bf16 peak (`PEAK_BF16_TFLOPS`, `mfu`).
   Without TRL only our side runs.
4. `chord_step`: one CHORD-phi step through `train` with the HF backend on the same model: rollouts on
   `chord/FunctionCatalog-v0`, expert traces of the same catalogue (`envs/data_build.py`, `fc_rows`).

`--dry-run` runs every part at tiny size on CPU (the `tiny-random` architecture, a few tokens): the
rehearsal tests/test_gpu_check.py runs in `make test`.

The carried folder, made on a machine with the package registry (Python 3.12 wheels for the GPU
machine, at the versions installed here; the tokenizer converted here):

    python scripts/gpu_check.py --pack .gpu

`.gpu/` is ignored by git, and is what the device run carries (a few MB).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]

CARRIED_PACKAGES = ("gymnasium", "farama-notifications", "jsonschema", "jsonschema-specifications", "referencing",
                    "rpds-py", "datasets", "dill", "multiprocess", "trl", "peft")
"""What the GPU machine's image lacks (docs of the device kinds list its packages) for the parts
below: chord-env's own dependencies on the path they take, TRL for the baseline, peft for LoRA."""

NEEDS = {
    "cuda_tests": ("chord_env", "pytest", "gymnasium", "jsonschema", "peft"),
    "bench_trainer": ("chord_env", "transformers"),
    "chord_step": ("chord_env", "gymnasium", "jsonschema"),
}
"""Modules each part imports; a part with one missing is skipped."""

SMOL_05B = dict(hidden_size=1152, intermediate_size=3072, num_hidden_layers=32, num_attention_heads=18,
                num_key_value_heads=6, head_dim=64)
"""SmolLM2-360M (hidden 960, intermediate 2560, 32 layers, 15 heads of 64, 5 KV heads, vocabulary
49,152, tied embeddings) widened by 1.2 in hidden size, intermediate size and head counts, the head
size kept: 0.51 B parameters (the 360M's 362 M). SmolLM2 has no 0.5 B member; this keeps its layout."""

PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),
                    ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0))
"""Dense bf16 tensor-core peak by a substring of `torch.cuda.get_device_name()`, first match wins:
NVIDIA's datasheets give the sparse figure (H200 and H100 SXM 1,979 TFLOPS, H100 NVL 1,671, H100 PCIe
1,513, L40S 733, L4 242); dense is half of it. A100: 312 dense (A100 datasheet)."""


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of the card called `device_name`, or None when it is not in the table."""
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS if key in device_name), None)


def train_flops_per_token(params: int, layers: int, heads: int, head_dim: int, seq_len: int) -> float:
    """Model FLOPs of one trained token, forward and backward: 6 N + 12 L H Q T (Chowdhery et al. 2022,
    PaLM, appendix B), N the parameters that multiply (all but the input embedding, whose lookup costs
    nothing; a tied output layer counts once, as the LM head), L layers, H heads of size Q, T the
    sequence length. Counted for every token of the batch, prompt included, as the bench counts tokens."""
    return 6.0 * params + 12.0 * layers * heads * head_dim * seq_len


def matmul_params(model: Any) -> int:
    """N of `train_flops_per_token`: the parameters, less an input embedding that is not the LM head."""
    total = sum(p.numel() for p in model.parameters())
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    return total if tied else total - model.get_input_embeddings().weight.numel()


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None) -> float | None:
    """Achieved model FLOPs over the peak (TFLOPS), or None without a known peak."""
    return None if peak is None else tokens_per_s * flops_per_token / (peak * 1e12)


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--disable-pip-version-check", *args], check=True, stdout=sys.stderr)


def install(wheels: Path | None, site: Path) -> dict[str, Any]:
    """Install the carried wheels and this repository into `site` and put it first on the paths."""
    site.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    found = sorted(wheels.glob("*.whl")) if wheels is not None and wheels.is_dir() else []
    if found:
        _pip("--upgrade", "--target", str(site), *map(str, found))
    installed_self = importlib.util.find_spec("chord_env") is None
    if installed_self:
        _pip("--no-build-isolation", "--target", str(site), str(REPO))
    importlib.invalidate_caches()
    missing = {part: _missing(modules) for part, modules in NEEDS.items()}
    return {"wheels": [w.name for w in found], "chord_env": "installed" if installed_self else "present",
            "missing": {part: names for part, names in missing.items() if names}}


def run_cuda_tests(timeout_s: int) -> dict[str, Any]:
    """The CUDA cases of tests/cuda in a pytest subprocess; the counts from its closing line.

    PYTHONSAFEPATH (Python >= 3.11) keeps the repository root off `sys.path`: its `chord_env/` folder is
    only the top of the package (the rest lives in agents/, trainer/, ... through pyproject's
    package-dir), so the installed package must be the one imported."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests/cuda"], cwd=REPO,
                          env={**os.environ, "PYTHONSAFEPATH": "1"}, capture_output=True, text=True, timeout=timeout_s)
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?)", tail[0])}
    result = {"status": "ok" if done.returncode == 0 else "failed", "summary": tail[0], **counts}
    if done.returncode != 0:
        result["output_tail"] = (done.stdout + done.stderr)[-3000:]
    return result


def make_model(folder: Path, tokenizer: Any, dry_run: bool, device: str) -> dict[str, Any]:
    """A seeded random-init model of SmolLM2's layout (`SMOL_05B`, or `tiny-random`'s for a dry run),
    saved in fp32 with the tokenizer and our chat template; returns its config and parameter counts."""
    import torch
    from transformers import LlamaForCausalLM

    from chord_env.chat import HERMES_TEMPLATE
    from chord_env.models import tiny_config

    config = tiny_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    if not dry_run:
        for key, value in SMOL_05B.items():
            setattr(config, key, value)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.config.dtype = "float32"
    model.save_pretrained(folder)
    tokenizer.chat_template = HERMES_TEMPLATE
    tokenizer.save_pretrained(folder)
    return {"config": config, "params": sum(p.numel() for p in model.parameters()), "matmul_params": matmul_params(model)}


def run_bench(model_dir: Path, model: dict[str, Any], dry_run: bool, device_name: str) -> dict[str, Any]:
    """Our update against TRL's (ours alone without TRL): tokens/s, the same-update evidence, MFU."""
    from chord_env.bench.trainer import SIDES, BenchSpec
    from chord_env.bench.trainer import run_bench as bench

    shape = dict(batch=2, prompt_tokens=16, completion_tokens=8) if dry_run else dict(batch=16, prompt_tokens=512, completion_tokens=512)
    repeats, warmup = (1, 0) if dry_run else (8, 2)
    spec = BenchSpec(str(model_dir), **shape)
    try:
        import trl  # noqa: F401  (imports datasets and accelerate: a version clash shows here, not in a worker)

        sides, trl_problem = SIDES, None
    except ImportError as e:
        sides, trl_problem = ("ours",), f"skipped: TRL does not import ({e}); carry its wheel"
    results, threads = bench(spec, sides, repeats=repeats, warmup=warmup)
    config = model["config"]
    flops = train_flops_per_token(model["matmul_params"], config.num_hidden_layers, config.num_attention_heads, config.head_dim,
                                  spec.prompt_tokens + spec.completion_tokens)
    peak = peak_tflops(device_name)
    out: dict[str, Any] = {
        "status": "ok", "params": model["params"], "matmul_params": model["matmul_params"],
        "tokens_per_update": spec.tokens, **shape, "timed_updates": repeats, "threads": threads,
        "flops_per_token": flops, "peak_bf16_tflops": peak,
        "mfu_formula": "tokens/s * (6 N + 12 L H Q T) / peak (PaLM, appendix B)",
    }
    for side, result in results.items():
        best, median, _ = result.tokens_per_s(spec.tokens)
        out[side] = {"tokens_per_s": best, "tokens_per_s_median": median, "mfu": mfu(best, flops, peak),
                     "first_loss": result.first_loss, "first_grad_norm": result.first_grad_norm, **result.memory}
    if "trl" in results:
        out["ours_over_trl"] = out["ours"]["tokens_per_s"] / out["trl"]["tokens_per_s"]
    else:
        out["trl"] = trl_problem
    return out


def run_chord_step(model_dir: Path, work: Path, dry_run: bool) -> dict[str, Any]:
    """One CHORD-phi step with the HF backend: rollouts on the function catalogue, its expert traces."""
    from chord_env.envs.data_build import fc_rows
    from chord_env.trainer.config import load_config
    from chord_env.trainer.metrics import read_metrics
    from chord_env.trainer.train import train

    expert = work / "fc_expert.jsonl"
    expert.write_text("".join(json.dumps(row) + "\n" for row in fc_rows(16, "train")))
    turn, tasks = (4, 2) if dry_run else (96, 8)
    config = load_config(REPO / "configs" / "chord-phi.yaml", [
        f"model={model_dir}", "env=chord/FunctionCatalog-v0", f"expert={expert}", f"out={work / 'run'}", "backend=hf",
        "steps=1", f"tasks_per_step={tasks}", "rollout.group_size=4", "expert_per_step=8", f"rollout.max_turn_tokens={turn}",
        "rollout.max_context=2048", "eval_every=0", "checkpoint_every=0",
    ])
    began = time.perf_counter()
    run = train(config)
    seconds = time.perf_counter() - began
    metrics = read_metrics(run / "metrics.jsonl")[-1]
    keys = ("loss/total", "loss/rl", "loss/sft", "chord/mu", "reward/mean", "sync/logprob_max_diff", "perf/rollout_s",
            "perf/update_s", "perf/update_tokens_per_s")
    finite = all(math.isfinite(metrics[k]) for k in ("loss/total", "grad/norm"))
    return {"status": "ok" if finite else "failed", "wall_s": seconds, **{k: metrics[k] for k in keys if k in metrics}}


def _part(summary: dict[str, Any], name: str, missing: dict[str, list[str]], run: Callable[[], dict[str, Any]]) -> None:
    """Run one part into `summary[name]`: skipped when a module it needs is missing, failed on an exception."""
    if missing.get(name):
        summary[name] = {"status": "skipped", "reason": f"not importable: {', '.join(missing[name])}"}
        return
    began = time.perf_counter()
    try:
        summary[name] = run()
    except Exception as e:  # the summary must still come out, with the reason
        summary[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:2000]}
    summary[name]["seconds"] = round(time.perf_counter() - began, 1)


def check(carried: Path | None, wheels: Path | None, dry_run: bool, work: Path) -> dict[str, Any]:
    """Every part, in order; the summary."""
    summary: dict[str, Any] = {"dry_run": dry_run}
    began = time.perf_counter()
    try:
        summary["install"] = {"status": "ok", **install(wheels, work / "site")}
    except subprocess.CalledProcessError as e:
        summary["install"] = {"status": "failed", "error": str(e)}
    missing = summary["install"].get("missing", {part: _missing(modules) for part, modules in NEEDS.items()})

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not dry_run:
        summary["error"] = "no CUDA device: run with --dry-run for the CPU rehearsal"
        return summary
    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    summary["machine"] = {"device": device_name, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}

    cache = work / "cache"
    os.environ["CHORD_ENV_CACHE"] = str(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if carried is not None and (carried / "tokenizer").is_dir():
        shutil.copytree(carried / "tokenizer", cache / "smollm2-tokenizer")
    _part(summary, "cuda_tests", missing, lambda: run_cuda_tests(timeout_s=240))
    model_dir = work / "model"
    made: dict[str, Any] = {}

    def bench() -> dict[str, Any]:
        from chord_env.tokenizer import load_tokenizer

        made.update(make_model(model_dir, load_tokenizer(), dry_run, "cuda" if cuda else "cpu"))
        return run_bench(model_dir, made, dry_run, device_name)

    _part(summary, "bench_trainer", missing, bench)
    if made:
        _part(summary, "chord_step", missing, lambda: run_chord_step(model_dir, work, dry_run))
    else:
        summary["chord_step"] = {"status": "skipped", "reason": "no model: the bench part did not make it"}
    summary["total_s"] = round(time.perf_counter() - began, 1)
    return summary


def pack(out: Path) -> None:
    """Write `out/wheels` (Python 3.12 manylinux wheels of `CARRIED_PACKAGES` at the versions installed
    here) and `out/tokenizer` (the converted SmolLM2 tokenizer) for a device run to carry."""
    from importlib.metadata import version

    from chord_env.tokenizer import load_tokenizer

    wheels = out / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    pins = [f"{name}=={version(name)}" for name in CARRIED_PACKAGES]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version=3.12",
                    "--implementation=cp", *platforms, "-d", str(wheels), *pins], check=True)
    load_tokenizer().save_pretrained(out / "tokenizer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--carried", type=Path, help="the folder `--pack` made: wheels/ and tokenizer/")
    parser.add_argument("--wheels", type=Path, help="wheels to install (default: CARRIED/wheels)")
    parser.add_argument("--dry-run", action="store_true", help="every part at tiny size, on CPU where there is no GPU")
    parser.add_argument("--out", type=Path, help="also write the JSON summary to this file")
    parser.add_argument("--pack", type=Path, metavar="DIR", help="write the carried folder (needs the package registry) and exit")
    args = parser.parse_args(argv)
    if args.pack is not None:
        pack(args.pack)
        return 0
    wheels = args.wheels or (args.carried / "wheels" if args.carried is not None else None)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work, contextlib.redirect_stdout(sys.stderr):
        summary = check(args.carried, wheels, args.dry_run, Path(work))
    text = json.dumps(summary, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    failed = any(isinstance(part, dict) and part.get("status") == "failed" for part in summary.values())
    return 1 if failed or "error" in summary else 0


if __name__ == "__main__":
    sys.exit(main())
