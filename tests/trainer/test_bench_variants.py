"""Smoke test of the bench's variants table (share_prefix x bf16 autocast, one process, ratios to plain fp32)."""

import pytest

from chord_env.bench.trainer import VARIANTS, BenchSpec, format_variants, make_batch, run_variants


def test_variants_run_in_one_process_and_report_ratios(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = BenchSpec(str(tiny_model_dir), batch=4, prompt_tokens=16, completion_tokens=4, group_size=2)
    prompts = make_batch(spec, 1000)[0]
    assert prompts[0].tolist() == prompts[1].tolist() != prompts[2].tolist()  # groups share their prompt
    results = run_variants(spec, repeats=1, warmup=1)
    assert list(results) == [name for name, _, _ in VARIANTS]
    for r in results.values():  # ratio == 1 at one step per batch: the loss is -mean(A) on every variant
        assert len(r.seconds) == 1 and r.first_loss == pytest.approx(-float(make_batch(spec, 10)[2].mean()), abs=1e-6)
    table = format_variants(spec, results, "tiny-random")
    assert "| share_prefix, bf16 autocast |" in table and "**1.00x**" in table
