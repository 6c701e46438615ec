"""`chord-env bench eval`: the command is wired up (the measurement itself needs vLLM and minutes)."""

from __future__ import annotations

import subprocess
import sys

from chord_env.bench.eval import Counting, _checks_per_s
from chord_env.agents.backend import Completion, SamplingParams


def test_bench_eval_is_a_cli_command():
    out = subprocess.run([sys.executable, "-m", "chord_env.cli", "bench", "eval", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for flag in ("--limit", "--max-tokens", "--batch-size", "--repeats"):
        assert flag in out.stdout


def test_counting_proxy_counts_sampled_tokens():
    class Fake:
        def generate(self, prompts, params):
            return [[Completion([1, 2, 3], [0.0] * 3, "stop")] for _ in prompts]

    counting = Counting(Fake())
    counting.generate([[1], [2]], SamplingParams())
    assert counting.tokens == 6
    assert _checks_per_s([len], ["abc"], min_seconds=0.01) > 0
