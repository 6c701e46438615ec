"""`make_http_get`: an `http_get(url)` tool that fetches pages from an allowlist of hosts only.

The tool refuses non-http(s) URLs and hosts outside the allowlist (compared case-insensitively,
any port), never follows redirects (a 3xx reply names its target, which the agent may fetch if that
host is allowed), ignores proxy settings from the environment, streams the body and stops after
`max_bytes`, saying so. Every failure raises with a clear message (`ValueError` for a refused
URL, `TimeoutError`, `ConnectionError`), which `execute` reports to the agent as "tool_exception".
httpx's timeout bounds connecting and each read; the whole body must also arrive within it, and the
tool's thread timeout is a backstop for what httpx does not bound (such as DNS resolution).
"""

from __future__ import annotations

import time
from typing import Collection

import httpx

from chord_env.tools.schema import Tool, tool


def make_http_get(allowed_hosts: Collection[str], timeout: float = 5.0, max_bytes: int = 100_000) -> Tool:
    """Build an `http_get(url)` tool limited to `allowed_hosts`, `timeout` seconds and `max_bytes`."""
    allowed = frozenset(h.lower() for h in allowed_hosts)
    client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)

    def http_get(url: str) -> str:
        parsed = _check(url, allowed)
        deadline = time.monotonic() + timeout
        try:
            with client.stream("GET", parsed) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
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
