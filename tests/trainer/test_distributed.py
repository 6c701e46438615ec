"""Two ranks under torchrun (gloo, loopback, CPU) make the update one process makes on the same global
batch, under DDP and under FSDP2; an FSDP2 run killed with SIGKILL resumes to the weights of an
uninterrupted one (trainer/distributed.py, trainer/checkpoint.py).

Every run is `chord-env train` in fresh processes (`CHILD` registers this module's env and backend
first): one process, or `python -m torch.distributed.run --nproc_per_node 2`. The runs train 3 CHORD
steps (mu 0.3: rollouts and expert traces in every step) on the tiny random model, with micro-batches
small enough that each side of a step packs into several, so ranks run different micro-batches and
one of them repeats a batch with weight 0 (`distributed.my_batches`).

"The same global batch" needs rollouts that do not depend on which rank plays a task: the HF backend
samples a whole batch from one generator, so here `EpisodeSeeded` samples each episode alone, seeded
by its prompt and its place in its group, and every task's prompt names a random number, so no two
tasks share a prompt. Expert traces are the same on every rank by construction (`expert.expert_batch`).

Tolerance. The ranks change only the order in which float32 gradient contributions are added (which
micro-batches one rank accumulates, then the reduction over ranks), each addition rounding at 2^-24
relative; AdamW then divides every gradient entry by its own running RMS, which turns that relative
error into a weight error where an entry nearly cancels, and the next steps compute on those weights.
So the bound is relative to how far training moved the weights (about 3 lr here: 3 steps of an
update AdamW keeps near lr per entry): measured, 2.5e-6 (DDP) and 9.8e-6 (FSDP2) of a largest move of
3.0e-2, i.e. up to 3.3e-4 of it; the test allows 3e-3 of it. An error in what is summed moves weights
by the order of the move itself: gradients summed over ranks on top of a part DDP had already reduced
(a mistake made while writing this) gave 3.2e-2. AdamW is blind to a global scale of the gradient, so
the logged gradient norm before clipping (`grad/norm`) is compared too: a wrong normaliser scales it.
The runs are deterministic (one thread per process), so the SIGKILL-and-resume run must give the
uninterrupted run's weights exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import socket
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from chord_env.trainer.metrics import read_metrics

from vowel_env import starts_with_vowel

import chord_env
from chord_env.agents.backend import Capabilities
from chord_env.agents.hf_backend import HFBackend
from chord_env.envs import Task
from chord_env.envs.base import ChatEnv

HERE = Path(__file__).resolve().parent
KILL_AT = "CHORD_TEST_KILL_AT_STEP"


class NumberEnv(ChatEnv):
    """One turn about a random number (a prompt of its own per task); reward 1 if the reply starts with a vowel."""

    def __init__(self):
        super().__init__(tasks=lambda rng: Task(prompt=f"Say something about the number {int(rng.integers(10**9))}."))

    def step(self, action):
        self._begin_step(action)
        self._done = True
        reward = starts_with_vowel(action)
        return [], reward, True, False, {"reward_breakdown": {"vowels": reward}}


chord_env.register("Numbers-v0", f"{__name__}:NumberEnv")
ENV_ID = f"{__name__}:chord/Numbers-v0"


class EpisodeSeeded(HFBackend):
    """The HF backend, sampling each prompt alone with a seed from its token ids and its place among the
    identical prompts of the call (its sample index in its GRPO group): samples independent of the rank
    and of the rest of the batch."""

    capabilities = Capabilities(shares_weights=True, syncs_weights=True, per_request_seeds=False, checks_parity=False)

    def generate(self, prompts, params):
        seen: collections.Counter = collections.Counter()
        out = []
        for prompt in prompts:
            seed = zlib.crc32(np.array([*prompt, seen[tuple(prompt)]], dtype=np.int64).tobytes())
            seen[tuple(prompt)] += 1
            out += super().generate([prompt], dataclasses.replace(params, seed=seed))
        return out


CHILD = f"""
import os, signal, sys
sys.path.insert(0, {str(HERE)!r})
import psutil
import test_distributed
from chord_env.agents.backend import register_backend
from chord_env.cli import main
from chord_env.trainer import distributed, train

register_backend("episode-seeded", test_distributed.EpisodeSeeded)
save = train.save_checkpoint

def save_then_crash(run_dir, step, *args, **kwargs):
    out = save(run_dir, step, *args, **kwargs)
    if str(step) == os.environ.get({KILL_AT!r}) and distributed.is_main():  # the whole job dies at once, as in a crash
        agent = psutil.Process(os.getppid())
        for process in agent.children(recursive=True):
            if process.pid != os.getpid():
                process.kill()
        agent.kill()
        os.kill(os.getpid(), signal.SIGKILL)
    return out

train.save_checkpoint = save_then_crash
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """Runs by name, made on first use: "single", "ddp", "fsdp2"."""
    root = tmp_path_factory.mktemp("distributed")
    expert = root / "expert.jsonl"
    with expert.open("w") as f:
        for n in range(8):
            messages = [{"role": "user", "content": f"Say something about the number {n}."}, {"role": "assistant", "content": "a e i o u"}]
            f.write(json.dumps({"messages": messages, "tools": []}) + "\n")
    (root / "child.py").write_text(CHILD)
    made: dict[str, Path] = {}

    def run(name: str, ranks: int, *extra: str, kill_at: int | None = None) -> Path:
        if name not in made:
            launch(root, ranks, [
                "train", f"model={tiny_model_dir}", f"env={ENV_ID}", f"expert={expert}", f"out={root / name}",
                "backend=episode-seeded", "mu=0.3", "tasks_per_step=2", "rollout.group_size=4", "expert_per_step=4",
                "rollout.max_turn_tokens=2", "rollout.max_context=64", "micro_batch_tokens=80", "lr=1e-2", "steps=3",
                "checkpoint_every=1", "seed=3", *extra,
            ], kill_at)
            made[name] = root / name
        return made[name]

    yield run
    shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(root: Path, ranks: int, args: list[str], kill_at: int | None = None) -> None:
    """`chord-env ARGS` in one process or under torchrun with `ranks` processes (loopback, gloo); with
    `kill_at`, rank 0 kills the whole job right after saving that step's checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(HERE)}
    env.pop(KILL_AT, None)
    if kill_at is not None:
        env[KILL_AT] = str(kill_at)
    launcher = [] if ranks == 1 else [
        "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(ranks),
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
    ]
    done = subprocess.run([sys.executable, *launcher, str(root / "child.py"), *args], env=env, capture_output=True, text=True, timeout=300)
    if kill_at is None:
        assert done.returncode == 0, done.stderr[-4000:]
    else:
        assert done.returncode != 0, "the run was to be killed"


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final" / "model.safetensors")


@pytest.mark.parametrize("kind", ["ddp", "fsdp2"])
def test_two_ranks_make_the_single_process_update(runs, kind, tiny_model_dir):
    single_run, two_run = runs("single", 1), runs(kind, 2, f"data_parallel={kind}")
    single, two = weights(single_run), weights(two_run)
    initial = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert two.keys() == single.keys()
    moved = max(float((single[k] - initial[k]).abs().max()) for k in single)
    assert moved > 0, "training changed nothing"
    for key in single:
        torch.testing.assert_close(two[key], single[key], rtol=0, atol=3e-3 * moved, msg=key)
    norms = [[m["grad/norm"] for m in read_metrics(run / "metrics.jsonl")] for run in (single_run, two_run)]
    assert len(norms[0]) == 3 and norms[1] == pytest.approx(norms[0], rel=1e-5)


def test_fsdp2_resumes_after_sigkill_to_the_uninterrupted_weights(runs, tmp_path):
    straight = runs("fsdp2", 2, "data_parallel=fsdp2")
    killed = runs("fsdp2-killed", 2, "data_parallel=fsdp2", kill_at=2)
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["step-000001", "step-000002"]
    assert (killed / "checkpoints" / "step-000002" / "sharded" / ".metadata").is_file()
    launch(killed.parent, 2, ["train", "--resume", str(killed)])
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bench_trainer_ranks_prints_two_ranks_against_one_and_what_the_ratio_means(tiny_model_dir, capsys):
    from chord_env.cli import main

    args = ["bench", "trainer", "--ranks", "2", "--model", "tiny-random", "--model-dir", str(tiny_model_dir),
            "--batch", "4", "--prompt-tokens", "16", "--completion-tokens", "8", "--repeats", "1", "--warmup", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    one, two = (line.split("|") for line in out.splitlines() if line.startswith(("| 1 |", "| 2 |")))
    assert float(two[5].strip(" *x")) > 0 and one[5].strip() == "**1.00x**"
    assert float(two[7]) == pytest.approx(float(one[7]), abs=2e-6), "1 rank and 2 ranks make the same first update"  # printed to 1e-6
    assert "what the ratio means:" in out and "cores" in out


def test_a_lora_run_under_ddp_makes_the_single_process_update(runs, tiny_model_dir):
    """LoRA (trainer/lora.py) under DDP: only the adapters are trained and all-reduced, and the merged
    final weights equal a single process's (same tolerance as above)."""
    single, two = weights(runs("lora-single", 1, "lora.rank=4")), weights(runs("lora-ddp", 2, "lora.rank=4", "data_parallel=ddp"))
    initial = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert two.keys() == single.keys() == initial.keys()  # merged: plain transformers names
    moved = max(float((single[k] - initial[k]).abs().max()) for k in single)
    assert moved > 0, "training changed nothing"
    for key in single:
        torch.testing.assert_close(two[key], single[key], rtol=0, atol=3e-3 * moved, msg=key)
