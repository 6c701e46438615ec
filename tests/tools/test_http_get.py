"""`make_http_get` against a local HTTP server on 127.0.0.1 (no other network is touched)."""

from __future__ import annotations

import gzip
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import Iterator

import pytest

from chord_env.tools import ToolResult, execute, make_http_get
from chord_env.types import ToolCall

import loopback

BIG = 200_000


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://evil.example/")
            self.end_headers()
            return
        if self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
            return
        body = {"/big": b"a" * BIG, "/missing": b"nope"}.get(self.path, "héllo".encode())
        if self.path.startswith("/gzip"):
            body = gzip.compress(b"a" * BIG if self.path == "/gzip-big" else body)
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if self.path.startswith("/gzip"):
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server, url = loopback.serve(Handler)
    yield url
    server.shutdown()
    server.server_close()


def get(url: str, **options: object) -> ToolResult:
    http_get = make_http_get({"127.0.0.1"}, **options)  # type: ignore[arg-type]
    return execute(ToolCall("http_get", {"url": url}), {"http_get": http_get})


def test_spec_names_allowed_hosts() -> None:
    http_get = make_http_get(["Example.org", "127.0.0.1"])
    assert http_get.name == "http_get"
    assert "127.0.0.1, example.org" in http_get.description
    assert http_get.spec.parameters["required"] == ["url"]


def test_allowed_host(base_url: str) -> None:
    assert get(f"{base_url}/hello") == ToolResult("http_get", "héllo")


def test_error_status_is_reported(base_url: str) -> None:
    result = get(f"{base_url}/missing")
    assert result.error is None and result.content == "HTTP 404 Not Found\nnope"


def test_disallowed_host(base_url: str) -> None:
    result = get(base_url.replace("127.0.0.1", "localhost") + "/hello")
    assert result.error == "tool_exception"
    assert "host 'localhost' is not allowed; allowed hosts: 127.0.0.1" in result.content


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/", "not a url", "http://"])
def test_bad_urls_refused(url: str) -> None:
    result = get(url)
    assert result.error == "tool_exception" and "ValueError" in result.content


def test_userinfo_trick_refused() -> None:
    result = get("http://127.0.0.1@evil.example/")
    assert result.error == "tool_exception" and "'evil.example' is not allowed" in result.content


def test_redirect_not_followed(base_url: str) -> None:
    result = get(f"{base_url}/redirect")
    assert result.content == "HTTP 302 Found: redirect to http://evil.example/ (not followed)"


def test_big_body_truncated(base_url: str) -> None:
    result = get(f"{base_url}/big", max_bytes=1000)
    assert result.content == "a" * 1000 + "\n[... truncated at 1000 bytes]"


def test_gzip_body_is_decoded_and_cut_after_decoding(base_url: str) -> None:
    assert get(f"{base_url}/gzip") == ToolResult("http_get", "héllo")
    result = get(f"{base_url}/gzip-big", max_bytes=1000)
    assert result.content == "a" * 1000 + "\n[... truncated at 1000 bytes]"


def test_timeout(base_url: str) -> None:
    start = time.monotonic()
    result = get(f"{base_url}/slow", timeout=0.5)
    assert result.error == "tool_exception" and "TimeoutError" in result.content
    assert time.monotonic() - start < 1.5


def test_slow_drip_hits_the_total_deadline(base_url: str) -> None:
    start = time.monotonic()
    result = get(f"{base_url}/drip", timeout=0.5)
    assert result.error == "tool_exception" and "did not finish within 0.5 s" in result.content
    assert time.monotonic() - start < 1.5


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = get(f"http://127.0.0.1:{port}/")
    assert result.error == "tool_exception" and "ConnectionError" in result.content
