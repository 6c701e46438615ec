"""`RemoteVLLMBackend`: routing and clear errors against fake servers on loopback (fast), then the real
thing (slow): two `vllm serve` processes on the tiny model, started on OTHER weights than the trainer's,
a 2-step CHORD run against them with logprob parity after each sync, and a second trainer re-joining."""

from __future__ import annotations

import json
import os
import shutil
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

import loopback
import vllm_servers
from chord_env.agents.backend import SamplingParams, capabilities
from chord_env.agents.openai_backend import BackendError
from chord_env.agents.remote_vllm_backend import RemoteVLLMBackend, server_urls

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TOL = 1e-3
CHANGED = 0.05


class FakeServer(loopback.Endpoint):
    """An OpenAI-style server serving model "fake" that answers each completion with one token, its
    `mark`, and records the prompts; `/collective_rpc` answers `rpc_status`."""

    def __init__(self, mark: int, rpc_status: int = 404):
        self.prompts: list[list[int]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "fake", "max_model_len": 4096}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path == "/v1/completions":
                    fake.prompts.append(body["prompt"])
                    choice = {"index": 0, "token_ids": [mark], "finish_reason": "length", "logprobs": {"token_logprobs": [-1.0]}}
                    self._send(200, {"choices": [choice]})
                else:
                    self._send(rpc_status, {"error": {"message": "AttributeError: 'CPUWorker' object has no attribute 'chord_env_hello'"}})

            def log_message(self, *args: Any) -> None:
                pass

        self.start(Handler)


@pytest.fixture
def fakes():
    servers: list[FakeServer] = []

    def make(mark: int, rpc_status: int = 404) -> FakeServer:
        servers.append(FakeServer(mark, rpc_status))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_declared_capabilities_and_server_lists():
    can = capabilities("remote-vllm")
    assert can.remote and can.syncs_weights and can.checks_parity and not can.shares_weights and not can.per_request_seeds
    assert server_urls("http://a:1/v1, http://b:2/v1/") == ["http://a:1/v1", "http://b:2/v1"]
    with pytest.raises(ValueError, match="base URLs"):
        server_urls("http://a:1/v1,")


def test_the_config_lists_servers_for_a_remote_backend_alone(tmp_path):
    from chord_env.trainer.config import load_config, save_config

    config = load_config(None, ["model=m", "backend=remote-vllm", "servers=[http://a:1/v1, http://b:2/v1]"])
    assert config.servers == ("http://a:1/v1", "http://b:2/v1")
    assert load_config(save_config(config, tmp_path / "c.yaml"), []) == config
    with pytest.raises(ValueError, match="servers: backend 'remote-vllm' samples from servers"):
        load_config(None, ["model=m", "backend=remote-vllm"])
    with pytest.raises(ValueError, match="servers: only a remote backend takes servers"):
        load_config(None, ["model=m", "backend=hf", "servers=[http://a:1/v1]"])


def test_a_group_and_its_later_turns_stay_on_one_server_and_groups_spread(fakes):
    a, b = fakes(100), fakes(200)
    one = SamplingParams(max_tokens=1)
    with RemoteVLLMBackend([a.url, b.url]) as backend:
        first, second = [1, 2, 3], [4, 5, 6, 7]
        out = backend.generate([first, second, first, second], one)
        where = [group[0].token_ids[0] for group in out]
        assert where[0] == where[2] and where[1] == where[3] and where[0] != where[1]  # a group together, groups apart
        turns = [prompt + [where[i], 9] for i, prompt in enumerate([first, second, first, second])]
        out = backend.generate([[8, 8], *turns, [7, 7, 7]], one)
        assert [group[0].token_ids[0] for group in out[1:5]] == where  # each episode's next turn where it began
        assert {out[0][0].token_ids[0], out[5][0].token_ids[0]} == {100, 200}  # two new episodes: one each
        assert len(a.prompts) == len(b.prompts) == 5


def test_a_server_without_dev_mode_or_the_extension_is_a_clear_error(fakes):
    with RemoteVLLMBackend([fakes(1, rpc_status=404).url]) as backend, pytest.raises(BackendError, match="VLLM_SERVER_DEV_MODE=1"):
        backend.update_weights(torch.nn.Linear(2, 2))
    with RemoteVLLMBackend([fakes(1, rpc_status=500).url]) as backend, pytest.raises(BackendError, match="--worker-extension-cls"):
        backend.update_weights(torch.nn.Linear(2, 2))


# Two real servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def other_weights_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model folder with every weight moved by seeded noise: what the servers start on."""
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("models") / "tiny-other"
    shutil.copytree(tiny_model_dir, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def two_servers(other_weights_dir, tmp_path_factory):
    """Two vLLM servers on `other_weights_dir`, each worker bound to its own core where there are two."""
    logs = tmp_path_factory.mktemp("vllm-servers")
    cores = sorted(os.sched_getaffinity(0))
    servers = [vllm_servers.launch(other_weights_dir, logs / f"server{i}.log", str(cores[i % len(cores)])) for i in range(2)]
    try:
        for server in servers:
            vllm_servers.wait_ready(server)
        yield [server.url for server in servers]
    finally:
        for server in servers:
            vllm_servers.stop(server)


def served_requests(url: str) -> float:
    """Requests the server finished so far (vLLM's Prometheus counter)."""
    text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10.0).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:request_success_total"))


@pytest.mark.slow
def test_two_step_run_against_two_servers_syncs_and_keeps_parity(two_servers, tiny_model_dir, tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from chord_env.agents.weight_sync import logprob_parity
    from chord_env.trainer.config import load_config
    from chord_env.trainer.metrics import read_metrics
    from chord_env.trainer.train import train

    with RemoteVLLMBackend(two_servers) as backend:
        assert all(logprob_parity(replica, tiny_model) > CHANGED for replica in backend.replicas)  # not the trainer's weights yet
    expert = tmp_path / "expert.jsonl"
    messages = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "It is 5."}]
    expert.write_text(json.dumps({"messages": messages, "tools": []}) + "\n")
    before = [served_requests(url) for url in two_servers]
    config = load_config(CONFIGS / "chord-fixed-mu.yaml", [
        f"model={tiny_model_dir}", f"expert={expert}", f"out={tmp_path / 'run'}", "backend=remote-vllm",
        f"servers=[{', '.join(two_servers)}]", "steps=2", "tasks_per_step=2", "rollout.group_size=2", "expert_per_step=2",
        "rollout.max_turn_tokens=4", "rollout.max_context=1024", "lr=5e-2", "eval_every=0", "checkpoint_every=0", "seed=3",
    ])
    run = train(config)
    metrics = read_metrics(run / "metrics.jsonl")
    # a sync before each step's rollouts (the first because the servers hold other weights), each checked on both servers
    assert [m["sync/parity_max_diff"] <= TOL for m in metrics] == [True, True]
    probes_per_server = 2 * 3  # two syncs, three probes each
    assert all(after - was >= probes_per_server + 2 * 2 for was, after in zip(before, (served_requests(u) for u in two_servers)))
    final = AutoModelForCausalLM.from_pretrained(run / "final").eval()
    with RemoteVLLMBackend(",".join(two_servers)) as backend:  # a second trainer joins the same servers
        assert all(logprob_parity(replica, final) > CHANGED for replica in backend.replicas)  # one step behind
        backend.update_weights(final)
        assert all(logprob_parity(replica, final) <= TOL for replica in backend.replicas)
