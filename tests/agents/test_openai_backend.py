"""`OpenAIBackend`: bad input against a tiny fake server on loopback (fast), then the real thing
(slow): a `vllm.entrypoints.openai.api_server` process on the tiny model, whose ids and logprobs must
match transformers and the offline `VLLMBackend`, and which runs a multi-turn Calculator episode."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from chord_env.agents.backend import SamplingParams, open_backend
from chord_env.agents.openai_backend import BackendError, OpenAIBackend
import loopback

PROMPTS = [[1, 100, 200, 300], [1, 4000, 5000, 6000, 7000, 8000], [9, 10]]
FAST = dict(timeout=5.0, max_retries=2, backoff=0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choice(index: int, ids: list[int], reason: str = "length") -> dict[str, Any]:
    return {"index": index, "text": "", "token_ids": ids, "finish_reason": reason,
            "logprobs": {"token_logprobs": [-0.5] * len(ids), "tokens": [f"token_id:{t}" for t in ids]}}


class FakeServer(loopback.Endpoint):
    """An OpenAI-style server on 127.0.0.1 whose `/completions` answer is `respond(body)`:
    (status, JSON-able object or raw bytes). `/models` serves model "fake" with max_model_len 64."""

    def __init__(self, respond: Callable[[dict[str, Any]], tuple[int, Any]]):
        self.respond = respond
        self.bodies: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, payload: Any) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout or a cancelled request): what some tests do

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model", "max_model_len": 64}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(body)
                self._send(*fake.respond(body))

            def log_message(self, *args: Any) -> None:
                pass

        self.start(Handler)

    def backend(self, **options: Any) -> OpenAIBackend:
        return OpenAIBackend(self.url, "fake", **{**FAST, **options})


@pytest.fixture
def fake():
    servers: list[FakeServer] = []

    def make(respond: Callable[[dict[str, Any]], tuple[int, Any]]) -> FakeServer:
        servers.append(FakeServer(respond))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def echo(body: dict[str, Any]) -> tuple[int, Any]:
    """A well-formed answer: n choices (in reverse order), each the last prompt id then a stop id."""
    n = body["n"]
    return 200, {"choices": [choice(i, [body["prompt"][-1], *body["stop_token_ids"][:1]], "stop") for i in reversed(range(n))]}


def test_request_fields_and_parsed_completions(fake):
    server = fake(echo)
    with server.backend() as backend:
        params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=5, stop_token_ids=[2, 3], seed=4, n=2)
        out = backend.generate([[1, 2, 7], [9] * 64, [8]], params)
    assert out[0][0].token_ids == [7, 2] and out[0][0].logprobs == [-0.5, -0.5] and out[0][0].finish_reason == "stop"
    assert len(out[0]) == 2 and len(out[2]) == 2 and out[2][1].token_ids == [8, 2]
    assert [(c.token_ids, c.finish_reason) for c in out[1]] == [([], "length")] * 2  # 64 >= max_model_len: not sent
    assert len(server.bodies) == 2
    body = next(b for b in server.bodies if b["prompt"] == [1, 2, 7])
    assert {k: body[k] for k in ("model", "n", "max_tokens", "temperature", "top_p", "seed", "stop_token_ids", "logprobs")} == {
        "model": "fake", "n": 2, "max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "seed": 4, "stop_token_ids": [2, 3], "logprobs": 0}
    assert body["return_token_ids"] is True and body["return_tokens_as_token_ids"] is True


def test_server_down_retries_with_backoff_then_one_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    began = time.perf_counter()
    with OpenAIBackend(url, "fake", timeout=2.0, max_retries=3, backoff=0.05) as backend:
        with pytest.raises(BackendError, match="after 4 attempts: ConnectError") as error:
            backend.generate(PROMPTS, SamplingParams())
    assert url in str(error.value)
    assert time.perf_counter() - began >= 0.05 + 0.1 + 0.2  # 0.05 * (1 + 2 + 4)


def test_busy_server_is_retried_until_it_answers(fake):
    busy = [(503, {"error": {"message": "busy"}})] * 2
    server = fake(lambda body: busy.pop() if busy else echo(body))
    with server.backend() as backend:
        (completions,) = backend.generate([[5, 6]], SamplingParams(stop_token_ids=[2]))
    assert completions[0].token_ids == [6, 2] and len(server.bodies) == 3


def test_busy_server_that_stays_busy_is_one_error(fake):
    server = fake(lambda body: (503, {"error": {"message": "overloaded"}}))
    with server.backend(max_retries=2) as backend, pytest.raises(BackendError, match="after 3 attempts: HTTP 503: overloaded"):
        backend.generate([[5, 6]], SamplingParams())
    assert len(server.bodies) == 3


def test_slow_server_times_out_retries_then_fails(fake):
    server = fake(lambda body: (time.sleep(1.0), echo(body))[1])
    began = time.perf_counter()
    with server.backend(timeout=0.2, max_retries=1) as backend, pytest.raises(BackendError, match="after 2 attempts: ReadTimeout") as error:
        backend.generate([[5, 6]], SamplingParams())
    assert server.url + "/completions" in str(error.value)
    assert len(server.bodies) == 2 and time.perf_counter() - began < 1.0


@pytest.mark.parametrize(
    "answer, message",
    [
        ((200, b"{'choices': oops"), "not JSON"),
        ((200, {"id": "x"}), "no `choices` list"),
        ((200, {"choices": [{**choice(0, [5]), "token_ids": None}]}), "without `token_ids`.*return_token_ids"),
        ((200, {"choices": [{**choice(0, [5, 6]), "logprobs": {"token_logprobs": [-1.0]}}]}), "token_logprobs.*2 expected"),
        ((200, {"choices": [choice(0, [5], "abort")]}), "finish_reason 'abort'"),
        ((200, {"choices": []}), "expected indices 0..0"),
        ((400, {"error": {"message": "Token id 999999 is out of vocabulary"}}), "not retried.*HTTP 400: Token id 999999"),
        ((500, b"internal error"), "not retried.*HTTP 500: internal error"),
    ],
)
def test_deterministic_failures_are_one_request_and_a_clear_error(fake, answer, message):
    server = fake(lambda body: answer)
    with server.backend() as backend, pytest.raises(BackendError, match=message):
        backend.generate([[5]], SamplingParams())
    assert len(server.bodies) == 1


def test_bad_url_is_not_retried():
    with OpenAIBackend("ftp://127.0.0.1/v1", "fake", **FAST) as backend, pytest.raises(BackendError, match=r"not retried\): UnsupportedProtocol"):
        backend.generate([[5]], SamplingParams())


def test_one_failed_prompt_fails_the_call_and_cancels_the_rest(fake):
    def respond(body: dict[str, Any]) -> tuple[int, Any]:
        if body["prompt"] == [666]:
            return 200, b"garbage"
        time.sleep(2.0)
        return echo(body)

    server = fake(respond)
    began = time.perf_counter()
    with server.backend() as backend, pytest.raises(BackendError, match="not JSON"):
        backend.generate([[1, 2], [666], [3, 4]], SamplingParams())
    assert time.perf_counter() - began < 1.5  # did not wait for the slow answers


def test_unknown_model_and_unusable_after_close(fake):
    server = fake(echo)
    backend = OpenAIBackend(server.url, "other", **FAST)
    with pytest.raises(BackendError, match="does not serve model 'other'; it serves \\['fake'\\]"):
        backend.generate([[1]], SamplingParams())
    backend.close()
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.generate([[1]], SamplingParams())


def test_update_weights_is_not_possible_and_open_backend_builds_it(fake):
    server = fake(echo)
    backend = open_backend(server.url, "openai", model="fake", api_key="k", **FAST)
    assert isinstance(backend, OpenAIBackend)
    with pytest.raises(NotImplementedError, match="cannot update the weights"):
        backend.update_weights(None)
    backend.close()


# The real server ------------------------------------------------------------------------------------


def start_server(model_dir: Path, name: str, port: int, log: Path) -> tuple[subprocess.Popen, float]:
    """A vLLM OpenAI server on 127.0.0.1:`port` for `model_dir`; returns it and its start seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CACHE_ROOT": str(log.parent / "vllm-cache")}
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(os.sched_getaffinity(0)))))  # every core, as VLLMBackend
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name", name,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager", "--max-model-len", "1024",
        "--kv-cache-memory-bytes", str(2**29), "--logprobs-mode", "processed_logprobs", "--generation-config", "vllm",
        "--seed", "0", "--uvicorn-log-level", "warning",
    ]
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    while time.perf_counter() - began < 600:
        if process.poll() is not None:
            raise RuntimeError(f"the vLLM server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200:
                return process, time.perf_counter() - began
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"the vLLM server did not answer /health within 600 s:\n{log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (its engine core and worker too), SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    port = free_port()
    process, seconds = start_server(tiny_model_dir, "tiny", port, tmp_path_factory.mktemp("vllm-server") / "server.log")
    print(f"vLLM server started in {seconds:.1f} s")
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "tiny", timeout=120.0)
    try:
        yield backend
    finally:
        backend.close()
        stop_server(process)


@pytest.mark.slow
def test_greedy_ids_and_logprobs_match_transformers_and_vllm(served, tiny_vllm, tiny_model):
    import torch

    from chord_env.agents.weight_sync import reference_logprobs

    params = SamplingParams(temperature=0, max_tokens=12)
    out = served.generate(PROMPTS, params)
    assert out == tiny_vllm.generate(PROMPTS, params)
    for prompt, (c,) in zip(PROMPTS, out):
        with torch.no_grad():
            greedy = tiny_model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)[0, len(prompt):]
        assert c.token_ids == greedy.tolist() and c.finish_reason == "length"
        assert max(abs(a - b) for a, b in zip(c.logprobs, reference_logprobs(tiny_model, prompt, c.token_ids))) <= 1e-3


@pytest.mark.slow
def test_stop_tokens_and_long_prompts_agree_with_vllm(served, tiny_vllm):
    (greedy,) = served.generate([PROMPTS[1]], SamplingParams(temperature=0, max_tokens=8))[0]
    params = SamplingParams(temperature=0, max_tokens=8, stop_token_ids=[greedy.token_ids[3]])
    (stopped,) = served.generate([PROMPTS[1]], params)[0]
    assert stopped.token_ids[-1] == greedy.token_ids[3] and stopped.finish_reason == "stop"
    assert [stopped] == tiny_vllm.generate([PROMPTS[1]], params)[0]
    long = SamplingParams(temperature=0, max_tokens=10)
    assert served.generate([[5] * 1024, [5] * 1020], long) == tiny_vllm.generate([[5] * 1024, [5] * 1020], long)


@pytest.mark.slow
def test_sampled_logprobs_match_transformers_and_seeds_repeat(served, tiny_model):
    from chord_env.agents.weight_sync import default_probes, logprob_parity, reference_logprobs

    assert logprob_parity(served, tiny_model) <= 1e-3
    prompt = default_probes(tiny_model.config.vocab_size, lengths=(20,))[0]
    (c,) = served.generate([prompt], SamplingParams(temperature=0.7, max_tokens=10))[0]
    assert max(abs(a - b) for a, b in zip(c.logprobs, reference_logprobs(tiny_model, prompt, c.token_ids, 0.7))) <= 1e-3
    params = SamplingParams(temperature=1.0, max_tokens=6, n=3, seed=5)
    first = served.generate(PROMPTS, params)
    assert [len(group) for group in first] == [3, 3, 3] and first == served.generate(PROMPTS, params)


@pytest.mark.slow
def test_multi_turn_calculator_episode(served, tiny_model_dir):
    from transformers import AutoTokenizer

    import chord_env
    from chord_env.agents.runner import RolloutConfig, rollout
    from chord_env.chat import ChatRenderer

    class Recording:
        def __init__(self) -> None:
            self.sampled: list[list[int]] = []

        def generate(self, prompts: list[list[int]], params: SamplingParams) -> Any:
            out = served.generate(prompts, params)
            self.sampled += [c.token_ids for group in out for c in group]
            return out

    def make_env() -> Any:  # a user who always asks for more keeps the garbage-talking model going
        return chord_env.make("chord/Calculator-v0", user=lambda task, messages: "Go on.", max_turns=3)

    backend = Recording()
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(tiny_model_dir))
    config = RolloutConfig(group_size=2, max_turn_tokens=32, max_context=1024)
    # a random model almost never ends its turn: stop on a seventh of the vocabulary so turns end early
    trajectories = list(rollout(backend, make_env, renderer, [0, 1], config, list(range(0, 49152, 7)), progress=False))
    assert len(trajectories) == 4 and sum(len(t.turns) == 3 for t in trajectories) >= 3
    stored = [t.token_ids[turn.start : turn.end] for t in trajectories for turn in t.turns]
    assert sorted(stored) == sorted(backend.sampled)
