"""`RemoteVLLMBackend`: rollouts from one or more `vllm serve` processes, with the trainer's weights
pushed to them after each step.

Sampling goes through `OpenAIBackend`, one client per server (`replicas`): token-id prompts to
`/v1/completions`, sampled ids and their logprobs back (`openai_backend.py`). Every prompt of a
`generate` call goes to one server, chosen so that each server keeps the prompts it has seen:

- a prompt that extends a prompt the previous call sent (the next turn of the same episode) goes where
  that one went, so the server's prefix cache already holds the episode's history;
- the other prompts start episodes: identical ones (the samples of one GRPO group) go together, group
  by group, to the server with the fewest prompts of this call so far.

Per-request seeds are not declared (the CPU engine ignores them, docs/platform.md); each server
samples with its own `--seed`, so where a sample is drawn changes nothing the trainer relies on.

Weight sync (`update_weights`) is vLLM's worker-extension RPC with a weight broadcast group, the
pattern of vLLM's RLHF examples and TRL's `vllm serve`, over gloo instead of NCCL:
1. Once, on the first sync: `POST /collective_rpc` `chord_env_hello` to each server counts its workers
   (and fails clearly where the server lacks `VLLM_SERVER_DEV_MODE=1` or the worker extension); the
   trainer opens a `TCPStore` on its address on the route to the first server and every worker joins
   a gloo group through it (`chord_env_join`): the trainer is rank 0, the workers ranks 1..N.
2. Each sync: `chord_env_receive` goes to every server with the list of (name, dtype, shape), while the
   trainer broadcasts the tensors of `weight_sync.sync_state_dict` (Hugging Face names, no tied
   `lm_head`) one by one; each worker loads them through `WorkerExtension`'s in-place reload, which
   re-packs a tied output layer (`remote_vllm_worker.py`, `vllm_worker.py`).
3. `POST /reset_prefix_cache` on every server: cached prompt blocks hold the old weights' keys and values.
The trainer then checks logprob parity on every replica (`weight_sync.logprob_parity`).

Why gloo: one broadcast from the trainer reaches every server over TCP, across machines, with
torch's own collective and no file system in common. NCCL (vLLM's `nccl` weight-transfer backend,
TRL's communicator) needs a GPU at both ends and does not exist on CPU; CUDA IPC needs one machine; a
safetensors file in `/dev/shm` (what `VLLMBackend` uses) needs one machine too; sending tensors through
the HTTP RPC would be JSON strings through the API server and the engine's ZMQ socket. The cost: on GPU
machines gloo copies through host memory, where NCCL would not.

Under torchrun each rank talks to servers of its own (rank r: servers r, r + W, ... of the config's
list; `trainer/train.py`): every rank rolls out its share of the tasks from its own copy of the
weights (`trainer/distributed.py`), so each rank is the one sender of its own broadcast group and no
rank waits on another's servers (docs/launch.md).

The `/collective_rpc` and `/reset_prefix_cache` endpoints have no authentication (vLLM serves them only
in dev mode): keep the servers on a network only the trainer reaches. A failed sync raises
`BackendError`; the run stops and resumes from its last checkpoint.
"""

from __future__ import annotations

import json
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from itertools import accumulate
from typing import Any, Sequence
from urllib.parse import urlsplit

import httpx
import torch
from torch.distributed import TCPStore

from chord_env.agents.backend import Capabilities, Completion, SamplingParams
from chord_env.agents.openai_backend import BackendError, OpenAIBackend, _error_text
from chord_env.agents.remote_vllm_worker import broadcast, route_address, weight_group
from chord_env.agents.weight_sync import sync_state_dict

WORKER_EXTENSION = "chord_env.agents.remote_vllm_worker.RemoteWorkerExtension"


def server_urls(base_urls: str | Sequence[str]) -> list[str]:
    """The servers' OpenAI base URLs ("http://host:port/v1"), from a list or one comma-separated string."""
    urls = [u.strip().rstrip("/") for u in (base_urls.split(",") if isinstance(base_urls, str) else base_urls)]
    if not urls or not all(urls):
        raise ValueError(f"need one or more server base URLs, got {base_urls!r}")
    return urls


def served_model(base_url: str, api_key: str | None = None, timeout: float = 60.0) -> str:
    """The one model the server at `base_url` serves (`GET /models`)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    try:
        response = httpx.get(f"{base_url}/models", headers=headers, timeout=timeout)
        response.raise_for_status()
        names = [card["id"] for card in response.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        raise BackendError(f"GET {base_url}/models failed: {type(e).__name__}: {e}") from None
    if len(names) != 1:
        raise BackendError(f"{base_url} serves {names}; name the model to sample from (model=...)")
    return names[0]


class RemoteVLLMBackend:
    """A `Backend` over the vLLM servers at `base_urls` (module docstring). `model` is the served name
    (default: the one model each server lists); `sync_timeout` bounds joining the broadcast group and
    each sync, in seconds; the other options go to each `OpenAIBackend`."""

    capabilities = Capabilities(shares_weights=False, syncs_weights=True, per_request_seeds=False, checks_parity=True, remote=True)

    def __init__(
        self,
        base_urls: str | Sequence[str],
        model: str | None = None,
        *,
        api_key: str | None = None,
        max_model_len: int | None = None,
        sync_timeout: float = 300.0,
        **options: Any,
    ):
        urls = server_urls(base_urls)
        self.roots = [url.removesuffix("/v1") for url in urls]
        self.sync_timeout = sync_timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self.replicas = [
            OpenAIBackend(url, model or served_model(url, api_key), api_key=api_key, max_model_len=max_model_len, **options)
            for url in urls
        ]
        self._pool = ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="remote-vllm")
        self._roots: dict[int, dict[int, int]] = {}
        self._store: TCPStore | None = None
        self._group: Any = None

    def _route(self, prompts: Sequence[list[int]], n: int) -> list[int]:
        """The server of each prompt (module docstring), remembering this call's episodes for the next."""
        route: list[int] = [-1] * len(prompts)
        roots: dict[int, dict[int, int]] = {}
        load = [0] * len(self.replicas)
        starts: dict[tuple[int, ...], list[int]] = {}
        for i, prompt in enumerate(prompts):
            for length, seen in self._roots.items():
                key = hash(tuple(prompt[:length])) if length <= len(prompt) else None
                if key in seen:
                    route[i] = seen[key]
                    roots.setdefault(length, {})[key] = route[i]
                    load[route[i]] += n
                    break
            else:
                starts.setdefault(tuple(prompt), []).append(i)
        for prompt, members in sorted(starts.items(), key=lambda item: -len(item[1])):
            server = load.index(min(load))
            load[server] += n * len(members)
            roots.setdefault(len(prompt), {})[hash(prompt)] = server
            for i in members:
                route[i] = server
        self._roots = roots
        return route

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions per prompt, in prompt order; the servers sample their shares at the same
        time. Raises `BackendError` if any server fails."""
        route = self._route(prompts, params.n)
        shares = [[i for i, s in enumerate(route) if s == server] for server in range(len(self.replicas))]
        calls = {
            server: self._pool.submit(replica.generate, [prompts[i] for i in share], params)
            for server, (replica, share) in enumerate(zip(self.replicas, shares))
            if share
        }
        results: list[list[Completion]] = [[] for _ in prompts]
        for server, call in calls.items():
            for i, completions in zip(shares[server], call.result()):
                results[i] = completions
        return results

    def _post(self, url: str, body: dict[str, Any] | None = None, hint: str = "") -> Any:
        """The JSON answer of one POST to a server's dev-mode endpoint, not retried (a repeated receive
        would wait for a broadcast that never comes); `hint` ends the message of an error it answered."""
        try:
            response = httpx.post(url, json=body, headers=self._headers, timeout=self.sync_timeout)
        except httpx.HTTPError as e:
            raise BackendError(f"POST {url} failed: {type(e).__name__}: {e}") from None
        if response.status_code == 404:
            raise BackendError(f"{url} does not exist: start the server with VLLM_SERVER_DEV_MODE=1 (docs/launch.md)")
        if response.is_error:
            raise BackendError(f"POST {url} failed: {_error_text(response)}{hint}")
        return response.json()

    def _rpc(self, root: str, method: str, *args: str, hint: str = "") -> list[Any]:
        """Run `method` of the worker extension in every worker of the server at `root`; one result each."""
        return self._post(f"{root}/collective_rpc", {"method": method, "args": list(args)}, f" ({method}){hint}")["results"]

    def _workers(self, root: str) -> int:
        """How many workers the server at `root` runs (one per tensor- or pipeline-parallel rank)."""
        ranks = sorted(int(r) for r in self._rpc(root, "chord_env_hello", hint=f"; start it with --worker-extension-cls {WORKER_EXTENSION}"))
        if ranks != list(range(len(ranks))):
            raise BackendError(f"{root}: worker ranks {ranks}, expected 0..{len(ranks) - 1} (data-parallel servers are not supported)")
        return len(ranks)

    def _settle(self, calls: list[Future], what: str) -> list[Any]:
        """The servers' results, raising the first failure as soon as it happens."""
        done, _ = wait(calls, timeout=self.sync_timeout, return_when=FIRST_EXCEPTION)
        for call in calls:
            if call in done and call.exception() is not None:
                raise BackendError(f"{what}: {call.exception()}") from None
        if len(done) < len(calls):
            raise BackendError(f"{what}: no answer from every server within {self.sync_timeout:g} s")
        return [call.result() for call in calls]

    def _join(self) -> None:
        """Form the broadcast group: the trainer as rank 0, every server's workers after it."""
        counts = [self._workers(root) for root in self.roots]
        world_size = 1 + sum(counts)
        timeout = timedelta(seconds=self.sync_timeout)
        address = route_address(urlsplit(self.roots[0]).hostname or "127.0.0.1")
        store = TCPStore(address, 0, world_size, is_master=True, timeout=timeout, wait_for_workers=False)
        calls = [
            self._pool.submit(self._rpc, root, "chord_env_join", json.dumps(
                {"host": address, "port": store.port, "rank_offset": offset, "world_size": world_size, "timeout_s": self.sync_timeout}))
            for root, offset in zip(self.roots, accumulate([1, *counts[:-1]]))
        ]
        try:
            group = weight_group(store, 0, world_size, address, timeout)
        except RuntimeError as e:
            failed = [str(call.exception()) for call in calls if call.done() and call.exception() is not None]
            raise BackendError(f"the weight group at {address}:{store.port} did not form: {e}; {failed}") from None
        self._settle(calls, "joining the weight group")
        self._store, self._group = store, group

    def update_weights(self, model: torch.nn.Module) -> None:
        """Broadcast `model`'s weights to every server and reset their prefix caches (module docstring)."""
        if self._group is None:
            self._join()
        tensors = sync_state_dict(model)
        spec = json.dumps([[name, str(t.dtype).removeprefix("torch."), list(t.shape)] for name, t in tensors.items()])
        calls = [self._pool.submit(self._rpc, root, "chord_env_receive", spec) for root in self.roots]
        works = [broadcast(self._group, tensor) for tensor in tensors.values()]
        for results in self._settle(calls, "sending the weights"):
            if any(int(r) != len(tensors) for r in results):
                raise BackendError(f"a worker loaded {results} tensors of {len(tensors)}")
        for work in works:
            work.wait()
        for root in self.roots:
            if not self._post(f"{root}/reset_prefix_cache").get("success"):
                raise BackendError(f"{root} did not reset its prefix cache")

    def close(self) -> None:
        """Close the clients and leave the broadcast group (the servers keep running)."""
        for replica in self.replicas:
            replica.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._group = self._store = None

    def __enter__(self) -> "RemoteVLLMBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
