"""`make_http_get`: an `http_get(url)` tool that fetches pages from an allowlist of hosts only.

The tool refuses non-http(s) URLs and hosts outside the allowlist (compared case-insensitively,
any port), never follows redirects (a 3xx reply names its target, which the agent may fetch if that
host is allowed), ignores proxy settings from the environment, streams the body and stops after
`max_bytes`, saying so. Every failure raises with a clear message (`ValueError` for a refused
URL or body, `TimeoutError`, `ConnectionError`), which `execute` reports to the agent as
"tool_exception". httpx's timeout bounds connecting and each read; the whole body must also arrive
within it, and the tool's thread timeout is a backstop for what httpx does not bound (such as DNS
resolution).

Compressed bodies. `max_bytes` caps the decoded body, not only what arrives: a few hundred bytes of
gzip can expand to gigabytes, and httpx decodes every chunk it receives in full (and stacks one
decoder per listed encoding, so `Content-Encoding: gzip, gzip` costs a second expansion). So the
tool asks for `gzip` or `deflate` only, reads the raw bytes (`Response.iter_raw`) and decodes them
itself with a `zlib.decompressobj`, passing `max_length` so no call returns more than the room left
under the cap (https://docs.python.org/3/library/zlib.html#zlib.Decompress.decompress). Memory is
therefore about `max_bytes` plus one network chunk whatever the body; input that decodes to nothing
is bounded by the deadline. A body with more than one content encoding, or one other than gzip,
deflate (zlib-wrapped or raw, as servers send both) or identity, is refused with a `ValueError`, as
is a body that is not valid data for its encoding.
"""

from __future__ import annotations

import time
import zlib
from typing import Collection

import httpx

from chord_env.tools.schema import Tool, tool

ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def make_http_get(allowed_hosts: Collection[str], timeout: float = 5.0, max_bytes: int = 100_000) -> Tool:
    """Build an `http_get(url)` tool limited to `allowed_hosts`, `timeout` seconds and `max_bytes`."""
    allowed = frozenset(h.lower() for h in allowed_hosts)
    client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)

    def http_get(url: str) -> str:
        parsed = _check(url, allowed)
        deadline = time.monotonic() + timeout
        try:
            with client.stream("GET", parsed, headers={"Accept-Encoding": ACCEPT_ENCODING}) as response:
                decoder = _Decoder(url, response.headers.get_list("content-encoding", split_commas=True))
                body = bytearray()
                for chunk in response.iter_raw():
                    body += decoder.decode(chunk, max_bytes + 1 - len(body))
                    if len(body) > max_bytes:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"GET {url} did not finish within {timeout:g} s")
                text = bytes(body[:max_bytes]).decode(response.encoding or "utf-8", errors="replace")
                status, location = response.status_code, response.headers.get("location")
                reason = response.reason_phrase
        except httpx.TimeoutException:
            raise TimeoutError(f"GET {url} timed out after {timeout:g} s") from None
        except httpx.HTTPError as e:
            raise ConnectionError(f"GET {url} failed: {e}") from None
        if len(body) > max_bytes:
            text += f"\n[... truncated at {max_bytes} bytes]"
        if 300 <= status < 400 and location:
            return f"HTTP {status} {reason}: redirect to {location} (not followed)"
        return text if status < 300 else f"HTTP {status} {reason}\n{text}"

    http_get.__doc__ = f"""Fetch a web page with an HTTP GET request and return its body as text.

    Only these hosts are allowed: {", ".join(sorted(allowed)) or "none"}. Redirects are not followed.
    The body is cut after {max_bytes} bytes.

    Args:
        url: The full http:// or https:// URL to fetch.
    """
    return tool(timeout=2 * timeout + 1)(http_get)


class _Decoder:
    """Undo at most one content encoding, never returning more bytes than the caller has room for."""

    def __init__(self, url: str, encodings: list[str]) -> None:
        names = [e.strip().lower() for e in encodings if e.strip().lower() not in ("", "identity")]
        if len(names) > 1:
            listed = ", ".join(names)
            raise ValueError(f"GET {url}: the body has {len(names)} content encodings ({listed}); one at most")
        if names and names[0] not in _WBITS:
            raise ValueError(f"GET {url}: unsupported content encoding {names[0]!r}; accepted: {ACCEPT_ENCODING}")
        self.url = url
        self.encoding = names[0] if names else None
        self.inflater = zlib.decompressobj(_WBITS[self.encoding]) if self.encoding else None
        self.started = False

    def decode(self, data: bytes, room: int) -> bytes:
        """Decode `data`, returning at most `room` (>= 1) bytes; input beyond that is dropped."""
        if self.inflater is None:
            return data[:room]
        first, self.started = not self.started, True
        try:
            return self.inflater.decompress(data, room)
        except zlib.error as e:
            if first and self.encoding == "deflate":  # raw deflate, without the zlib wrapper
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data, room)
            raise ValueError(f"GET {self.url}: the body is not valid {self.encoding} data ({e})") from None


def _check(url: str, allowed: frozenset[str]) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as e:
        raise ValueError(f"invalid URL {url!r}: {e}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs are allowed, not {url!r}")
    if parsed.host.lower() not in allowed:
        raise ValueError(f"host {parsed.host!r} is not allowed; allowed hosts: {', '.join(sorted(allowed)) or 'none'}")
    return parsed
