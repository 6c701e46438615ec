"""http_get caps what it decompresses, not only what it receives (local server on 127.0.0.1 only).

Each bomb below is a small body that decodes to `BOMB_MIB` MiB of zeros; the cap is `MAX_BYTES`.
tracemalloc counts the bytes Python and zlib allocate during one call (zlib allocates through
CPython's raw allocator, which tracemalloc traces). A decoder that stops at the cap needs about
`MAX_BYTES` for the body, a copy or two of it, one network chunk (at most 64 KiB) and zlib's 32 KiB
window: well under `PEAK_LIMIT`. Decoding a chunk in full, as httpx does, allocates the whole
`BOMB_MIB` MiB, eight times the limit.
"""

from __future__ import annotations

import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler
from typing import Iterator

import pytest

from chord_env.tools import execute, make_http_get
from chord_env.types import ToolCall

import loopback

MAX_BYTES = 100_000
BOMB_MIB = 64
PEAK_LIMIT = 8 * 2**20


def _compress(data: bytes, repeat: int, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join(packer.compress(data) for _ in range(repeat)) + packer.flush()


GZIP, ZLIB, RAW_DEFLATE = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
_GZIP_BOMB = _compress(bytes(2**20), BOMB_MIB, GZIP)
ROUTES: dict[str, tuple[list[str], bytes]] = {
    "/gzip-gzip": (["gzip, gzip"], _compress(_GZIP_BOMB, 1, GZIP)),
    "/gzip-twice": (["gzip", "gzip"], _compress(_GZIP_BOMB, 1, GZIP)),
    "/gzip": (["gzip"], _GZIP_BOMB),
    "/deflate": (["deflate"], _compress(bytes(2**20), BOMB_MIB, ZLIB)),
    "/raw-deflate": (["deflate"], _compress(bytes(2**20), BOMB_MIB, RAW_DEFLATE)),
    "/br": (["br"], b"\x0b\x02\x80hello\x03"),
    "/bad-gzip": (["gzip"], b"\x1f\x8b not gzip at all"),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        encodings, body = ROUTES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        for encoding in encodings:
            self.send_header("Content-Encoding", encoding)
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


def _get_with_peak(url: str) -> tuple[str, int]:
    """The tool's reply (or `ExcType: message`) and the peak bytes allocated while it ran."""
    http_get = make_http_get({"127.0.0.1"}, max_bytes=MAX_BYTES)
    tracemalloc.start()
    try:
        reply = http_get(url)
    except ValueError as e:
        reply = f"ValueError: {e}"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return reply, peak


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/raw-deflate"])
def test_single_encoding_bomb_is_cut_at_the_cap(base_url: str, path: str) -> None:
    assert len(ROUTES[path][1]) < 2**17 and BOMB_MIB * 2**20 >= 8 * PEAK_LIMIT
    reply, peak = _get_with_peak(f"{base_url}{path}")
    assert reply == "\0" * MAX_BYTES + f"\n[... truncated at {MAX_BYTES} bytes]"
    assert peak < PEAK_LIMIT


@pytest.mark.parametrize("path", ["/gzip-gzip", "/gzip-twice"])
def test_stacked_encodings_are_refused(base_url: str, path: str) -> None:
    assert len(ROUTES[path][1]) < 1000
    reply, peak = _get_with_peak(f"{base_url}{path}")
    assert reply.startswith("ValueError: ") and "2 content encodings (gzip, gzip); one at most" in reply
    assert peak < PEAK_LIMIT


def test_refusal_reaches_the_agent(base_url: str) -> None:
    http_get = make_http_get({"127.0.0.1"}, max_bytes=MAX_BYTES)
    result = execute(ToolCall("http_get", {"url": f"{base_url}/gzip-gzip"}), {"http_get": http_get})
    assert result.error == "tool_exception" and "content encodings" in result.content


@pytest.mark.parametrize(
    ("path", "message"),
    [("/br", "unsupported content encoding 'br'"), ("/bad-gzip", "not valid gzip data")],
)
def test_undecodable_bodies_are_refused(base_url: str, path: str, message: str) -> None:
    reply, _ = _get_with_peak(f"{base_url}{path}")
    assert reply.startswith("ValueError: ") and message in reply
