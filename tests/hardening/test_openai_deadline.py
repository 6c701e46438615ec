"""`OpenAIBackend` against hostile servers on loopback: a whole request is bounded by its deadline
(a server trickling one byte at a time is not a live server), and non-finite logprobs are refused.

Timing is generous: the trickling answer would take TRICKLE_SECONDS to arrive, the deadline is
DEADLINE seconds, and the test only asserts that the error comes well before the answer could have.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

import pytest

from chord_env.agents.backend import SamplingParams
from chord_env.agents.openai_backend import BackendError, OpenAIBackend
import loopback

DEADLINE = 1.5
BYTE_EVERY = 0.1
TRICKLE_SECONDS = 120.0
"""How long the trickling answer would take: far beyond DEADLINE plus any scheduling delay."""
MODELS = {"object": "list", "data": [{"id": "fake", "object": "model", "max_model_len": 64}]}


def answer(ids: list[int], logprobs: str) -> bytes:
    """A well-formed completions body with `logprobs` spliced in as raw JSON text (for NaN, Infinity)."""
    choice = json.dumps({"index": 0, "text": "", "token_ids": ids, "finish_reason": "stop", "logprobs": {"token_logprobs": "LP"}})
    return ('{"choices": [' + choice.replace('"LP"', logprobs) + "]}").encode()


class Server(loopback.Endpoint):
    """A loopback HTTP server: `/models` answers at once, `/completions` with `post(handler)`."""

    def __init__(self, post: Callable[[BaseHTTPRequestHandler], None]):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                send(self, 200, json.dumps(MODELS).encode())

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                post(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.start(Handler)


def send(handler: BaseHTTPRequestHandler, status: int, data: bytes, byte_every: float = 0.0) -> None:
    """Answer with `data`, all at once or one byte every `byte_every` seconds; stop when the client leaves."""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if not byte_every:
            handler.wfile.write(data)
            return
        for i in range(len(data)):
            handler.wfile.write(data[i : i + 1])
            handler.wfile.flush()
            time.sleep(byte_every)
    except (BrokenPipeError, ConnectionResetError):
        pass


@pytest.fixture
def serve():
    servers: list[Server] = []

    def make(post: Callable[[BaseHTTPRequestHandler], None]) -> Server:
        servers.append(Server(post))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_a_trickling_server_fails_at_the_deadline_not_per_read(serve):
    body = answer([5, 2], "[-0.5, -0.5]")
    body += b" " * (int(TRICKLE_SECONDS / BYTE_EVERY) - len(body))  # valid JSON, slow to arrive
    server = serve(lambda h: send(h, 200, body, byte_every=BYTE_EVERY))
    backend = OpenAIBackend(server.url, "fake", timeout=10.0, deadline=DEADLINE, max_retries=2, backoff=0.01)
    began = time.monotonic()
    try:
        with pytest.raises(BackendError, match="deadline of 1.5 s"):
            backend.generate([[1, 2, 3]], SamplingParams(max_tokens=2))
    finally:
        backend.close()
    assert time.monotonic() - began < TRICKLE_SECONDS / 4  # each read took 0.1 s < timeout: only the deadline ends it


def test_the_deadline_covers_retries_and_backoff(serve):
    server = serve(lambda h: send(h, 503, b'{"error": {"message": "busy"}}'))
    backend = OpenAIBackend(server.url, "fake", timeout=10.0, deadline=DEADLINE, max_retries=10_000, backoff=0.05)
    began = time.monotonic()
    try:
        with pytest.raises(BackendError, match="deadline"):
            backend.generate([[1, 2, 3]], SamplingParams(max_tokens=2))
    finally:
        backend.close()
    assert time.monotonic() - began < TRICKLE_SECONDS / 4  # 10,000 doubling backoffs would take forever


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_logprobs_are_refused(serve, value):
    server = serve(lambda h: send(h, 200, answer([5, 2], f"[-0.5, {value}]")))
    with OpenAIBackend(server.url, "fake", timeout=10.0, max_retries=0) as backend:
        with pytest.raises(BackendError, match=rf"non-finite logprob {value.replace('Infinity', 'inf').replace('NaN', 'nan')} for token 1"):
            backend.generate([[1, 2, 3]], SamplingParams(max_tokens=2))


@pytest.mark.parametrize("deadline", [0.0, -1.0, float("inf"), float("nan")])
def test_the_deadline_must_be_a_positive_number(deadline):
    with pytest.raises(ValueError, match="deadline"):
        OpenAIBackend("http://127.0.0.1:9/v1", "fake", deadline=deadline)
