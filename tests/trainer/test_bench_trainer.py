"""Smoke tests of `chord-env bench trainer` on the tiny model. Only the TRL comparison needs trl (the
`bench` extra); it is skipped without it."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from chord_env.cli import main as cli_main
from chord_env.bench.trainer import BenchSpec, make_batch, our_update, run_bench, trl_update


@pytest.fixture
def spec(tiny_model_dir, monkeypatch) -> BenchSpec:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return BenchSpec(str(tiny_model_dir), batch=4, prompt_tokens=16, completion_tokens=8)


def _load(model_dir: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()


def test_without_trl_the_command_says_how_to_install_it(monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else find_spec(name, *a))
    assert cli_main(["bench", "trainer", "--model", "tiny-random"]) != 0
    assert 'pip install -e ".[bench]"' in capsys.readouterr().err


def test_batch_is_seeded_and_advantages_non_zero(spec):
    prompt, completion, advantages = make_batch(spec, 1000)
    assert prompt.shape == (4, 16) and completion.shape == (4, 8)
    assert torch.equal(prompt, make_batch(spec, 1000)[0])
    assert (advantages != 0).all()
    assert spec.tokens == 4 * (16 + 8)


def test_our_side_in_its_own_process(spec):
    results, threads = run_bench(spec, sides=("ours",), repeats=2, warmup=1)
    ours = results["ours"]
    assert len(ours.seconds) == 2 and all(s > 0 for s in ours.seconds)
    assert ours.first_loss == pytest.approx(-float(make_batch(spec, 10)[2].mean()), abs=1e-6)  # ratio 1: -mean(A)
    assert ours.first_grad_norm > 0
    assert ours.memory["peak_rss_gib"] > 0 and threads >= 1
    best, median, worst = ours.tokens_per_s(spec.tokens)
    assert best >= median >= worst > 0


def test_trl_does_the_same_update_as_ours(spec, tmp_path):
    pytest.importorskip("trl", reason="TRL is only in the bench extra: pip install -e '.[bench]'")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)
    ours = our_update(_load(spec.model_dir), spec, tokenizer.pad_token_id)()
    theirs = trl_update(_load(spec.model_dir), spec, tokenizer, str(tmp_path))()
    assert theirs == pytest.approx(ours, rel=1e-5)
