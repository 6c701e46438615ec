"""No orphans: a process that owns a vLLM engine is killed with SIGKILL, and every process it started
(engine core, worker) must be gone soon after.

The fast test runs the real `VLLMBackend` start path in a small parent process over a stand-in
`vllm` package whose `LLM` starts its processes the way vLLM does: an "EngineCore" child through
multiprocessing (spawn) that starts a "worker" grandchild the same way, both waiting for ever.
The slow test (one real engine on the tiny model, run once) checks the same with vLLM itself.

Deadlines are generous: the watchdog looks every `orphan_guard.INTERVAL` (0.5 s) seconds, so the
processes are gone within a second of the kill on an idle machine; the tests allow GONE_WITHIN.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

GONE_WITHIN = 30.0
STARTED_WITHIN = 240.0

FAKE_VLLM = '''
"""A stand-in for vllm: `LLM` starts an engine-core process that starts a worker, both through
multiprocessing's spawn context (as vLLM does), and waits until both are up."""
import multiprocessing
import os
import time


def _worker():
    time.sleep(3600)


def _engine_core(ready):
    worker = multiprocessing.get_context("spawn").Process(target=_worker, name="VllmWorker-0")
    worker.start()
    ready.put(worker.pid)
    time.sleep(3600)


class LLM:
    def __init__(self, model, seed=0, **kwargs):
        context = multiprocessing.get_context("spawn")
        ready = context.Queue()
        self.core = context.Process(target=_engine_core, args=(ready,), name="EngineCore")
        self.core.start()
        ready.get(timeout=120)
'''

FAKE_PLATFORMS = '''
class _Platform:
    def is_cpu(self):
        return True


current_platform = _Platform()
'''

PARENT = '''
import pathlib
import sys
import time

if __name__ == "__main__":
    from chord_env.agents.vllm_backend import VLLMBackend

    backend = VLLMBackend(sys.argv[1], max_model_len=256, kv_cache_gib=0.25)
    pathlib.Path(sys.argv[2]).write_text("ready")
    time.sleep(3600)
'''


def start_parent(tmp_path: Path, model_dir: Path, fake_vllm: bool) -> subprocess.Popen:
    """The parent process, once its engine is up (it writes the file `ready`)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if fake_vllm:
        package = tmp_path / "fake" / "vllm"
        (package / "platforms").mkdir(parents=True)
        (package / "__init__.py").write_text(textwrap.dedent(FAKE_VLLM))
        (package / "platforms" / "__init__.py").write_text(FAKE_PLATFORMS)
        env["PYTHONPATH"] = os.pathsep.join([str(package.parent), env.get("PYTHONPATH", "")])
    script, ready, log = tmp_path / "parent.py", tmp_path / "ready", tmp_path / "parent.log"
    script.write_text(PARENT)
    with log.open("w") as out:
        parent = subprocess.Popen([sys.executable, str(script), str(model_dir), str(ready)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    deadline = time.monotonic() + STARTED_WITHIN
    while not ready.exists() and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if not ready.exists():
        if parent.poll() is None:
            kill_and_watch(parent, engine_processes=0)
        pytest.fail(f"the parent did not start its engine within {STARTED_WITHIN} s; its output ends with:\n{log.read_text()[-3000:]}")
    return parent


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def kill_and_watch(parent: subprocess.Popen, engine_processes: int) -> None:
    """SIGKILL the parent, which has at least `engine_processes` descendants besides any watchdog;
    every one of its descendants must be gone within GONE_WITHIN seconds."""
    descendants = psutil.Process(parent.pid).children(recursive=True)
    try:
        engine = [p for p in descendants if "orphan_guard" not in " ".join(p.cmdline())]
        assert len(engine) >= engine_processes, [p.cmdline() for p in descendants]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + GONE_WITHIN
        while alive(descendants) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = alive(descendants)
        assert not survivors, f"orphans {GONE_WITHIN} s after the parent was killed: {[(p.pid, p.cmdline()) for p in survivors]}"
    finally:
        for p in alive(descendants):  # only what this test started, by pid and start time
            p.kill()


def test_engine_processes_die_with_a_killed_parent(tmp_path, tiny_model_dir):
    parent = start_parent(tmp_path, tiny_model_dir, fake_vllm=True)
    kill_and_watch(parent, engine_processes=2)  # the spawned engine core and its worker


@pytest.mark.slow
def test_a_real_vllm_engine_dies_with_its_killed_parent(tmp_path, tiny_model_dir):
    """One real engine (~30-60 s to start on 2 busy cores): EngineCore and its worker must not survive."""
    parent = start_parent(tmp_path, tiny_model_dir, fake_vllm=False)
    kill_and_watch(parent, engine_processes=1)
