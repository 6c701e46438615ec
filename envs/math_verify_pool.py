"""Math answer checking with math-verify, in worker processes so its timeout works from any thread.

math-verify bounds its parsing and comparison with `signal.alarm`, which only works on a process's
main thread (docs/platform.md, "Math"). Running it in pool workers (each executes tasks on its own
main thread) keeps the timeout working whether the caller is a rollout thread or the main one, and
lets verification use several cores. A check that overruns `timeout` scores 0: the pool is terminated
and rebuilt, so a pathological expression cannot stall the caller.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import threading
from typing import Sequence

_MATH_VERIFY_TIMEOUT_S = 3


def verify(gold: str, prediction: str) -> float:
    """1.0 if `prediction` (free text, LaTeX or a boxed answer) states the same value as `gold`."""
    from math_verify import parse, verify as mv_verify

    try:
        gold_parsed = parse(gold, parsing_timeout=_MATH_VERIFY_TIMEOUT_S)
        pred_parsed = parse(prediction, parsing_timeout=_MATH_VERIFY_TIMEOUT_S)
        return float(mv_verify(gold_parsed, pred_parsed, timeout_seconds=_MATH_VERIFY_TIMEOUT_S))
    except Exception:  # math-verify may fail on arbitrary model text: that is a wrong answer
        return 0.0


def _verify_pair(pair: tuple[str, str]) -> float:
    return verify(*pair)


class VerifierPool:
    """A lazily started pool of `processes` workers running `verify`.

    `score` checks one answer (with a wall-clock `timeout`); `score_many` checks a batch, spread over
    the workers in chunks. Both return 0.0 for answers that time out.
    """

    def __init__(self, processes: int = 1, timeout: float = 10.0):
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        self.timeout = timeout
        self._pool: mp.pool.Pool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> mp.pool.Pool:
        with self._lock:
            if self._pool is None:
                self._pool = mp.get_context("spawn").Pool(self.processes)
            return self._pool

    def _restart(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None

    def score(self, gold: str, prediction: str) -> float:
        try:
            return self._get_pool().apply_async(verify, (gold, prediction)).get(self.timeout)
        except mp.TimeoutError:
            self._restart()
            return 0.0

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        chunksize = max(1, len(pairs) // (4 * self.processes))
        try:
            result = self._get_pool().map_async(_verify_pair, pairs, chunksize=chunksize)
            return result.get(self.timeout + self.timeout * len(pairs) / self.processes)
        except mp.TimeoutError:
            self._restart()
            return [self.score(g, p) for g, p in pairs]

    def close(self) -> None:
        self._restart()


_shared: VerifierPool | None = None


def shared_pool() -> VerifierPool:
    """One single-process pool shared by every MathEnv in this process."""
    global _shared
    if _shared is None:
        _shared = VerifierPool(processes=1)
        atexit.register(_shared.close)
    return _shared
