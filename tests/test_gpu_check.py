"""scripts/gpu_check.py: its CPU rehearsal (`--dry-run`) runs every part at tiny size and prints one JSON
summary, installing a carried wheel on the way; the MFU arithmetic and the model it benchmarks."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probe_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel: the package `chordprobe`."""
    path = folder / "chordprobe-0.1-py3-none-any.whl"
    files = {
        "chordprobe/__init__.py": "VALUE = 1\n",
        "chordprobe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: chordprobe\nVersion: 0.1\n",
        "chordprobe-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files["chordprobe-0.1.dist-info/RECORD"] = "".join(f"{name},,\n" for name in [*files, "chordprobe-0.1.dist-info/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_the_peak_table_and_the_mfu_arithmetic(gpu_check):
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe") == 756.0 and gpu_check.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_check.peak_tflops("NVIDIA L4") == 121.0 and gpu_check.peak_tflops("NVIDIA L40S") == 362.0
    assert gpu_check.peak_tflops("NVIDIA GeForce GTX 1080") is None and gpu_check.mfu(1e4, 1e9, None) is None
    flops = gpu_check.train_flops_per_token(params=100, layers=2, heads=3, head_dim=4, seq_len=5)
    assert flops == 6 * 100 + 12 * 2 * 3 * 4 * 5
    assert gpu_check.mfu(1e4, 1e9, 100.0) == pytest.approx(1e13 / 1e14)


def test_the_benchmarked_model_is_smollm2_360m_widened_to_half_a_billion(gpu_check):
    from transformers import LlamaConfig, LlamaForCausalLM

    def params(**shape):
        config = LlamaConfig(vocab_size=49152, tie_word_embeddings=True, **shape)
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        return gpu_check.matmul_params(model)

    smol_360m = dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5, head_dim=64)
    assert params(**smol_360m) == pytest.approx(362e6, rel=0.01)
    assert params(**gpu_check.SMOL_05B) == pytest.approx(0.51e9, rel=0.02)


@pytest.mark.slow
def test_the_cpu_rehearsal_runs_every_part_and_prints_one_json_summary(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    probe_wheel(wheels)
    out = tmp_path / "summary.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--wheels", str(wheels), "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary == json.loads(out.read_text()) and summary["dry_run"] is True

    install = summary["install"]
    assert install["status"] == "ok" and install["wheels"] == ["chordprobe-0.1-py3-none-any.whl"]
    assert install["chord_env"] == "present" and not install["missing"]

    tests = summary["cuda_tests"]
    assert tests["status"] == "ok" and "failed" not in tests
    assert tests.get("passed" if torch.cuda.is_available() else "skipped", 0) >= 3 and tests["deselected"] >= 3  # the CPU cases

    bench = summary["bench_trainer"]
    assert bench["status"] == "ok" and bench["ours"]["tokens_per_s"] > 0 and math.isfinite(bench["ours"]["first_loss"])
    assert bench["tokens_per_update"] == 2 * (16 + 8) and bench["flops_per_token"] > 6 * bench["matmul_params"]
    if torch.cuda.is_available():
        assert bench["ours"]["mfu"] is None or 0 < bench["ours"]["mfu"] < 1
    else:
        assert bench["peak_bf16_tflops"] is None and bench["ours"]["mfu"] is None
    assert isinstance(bench["trl"], dict) == (importlib.util.find_spec("trl") is not None)

    step = summary["chord_step"]
    assert step["status"] == "ok" and math.isfinite(step["loss/total"]) and step["chord/mu"] == pytest.approx(0.1)
    assert step["perf/update_tokens_per_s"] > 0
