"""No orphans: a watchdog process that kills a process's descendants once that process is gone.

vLLM starts its engine core (and on CPU a worker under it) as child processes through
multiprocessing. They hold gigabytes and wait on sockets, so when the process that owns them dies
without cleaning up (SIGKILL, the OOM killer) they live on as orphans. `guard_descendants()` starts,
once per process, a small watchdog (this file run as a script, `python -I orphan_guard.py PID`:
standard library and psutil only) that records the descendants of PID every `INTERVAL` seconds.
When PID is gone (exited, or a zombie waiting to be reaped) it kills, with SIGKILL, every recorded
descendant still alive and each one's own descendants, then exits. It also does so when PID exits
normally without stopping its children.

Why a watchdog and not PR_SET_PDEATHSIG: the death signal has to be set inside each child, and vLLM
creates its processes itself with no hook that runs in them first; and the kernel sends it when the
*thread* that forked the child exits, so an engine created from a short-lived thread would be killed
with that thread. The watchdog needs neither and covers every descendant, however it was started.

Limits: a process started less than `INTERVAL` seconds before PID died, whose own parent died too,
is not seen; the watchdog runs in a session of its own, so a terminal's Ctrl-C does not stop it
before the process it guards, but killing the watchdog itself ends the guard. Processes are told
apart by pid and start time (psutil), so a reused pid is never killed. Linux and macOS (psutil).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

INTERVAL = 0.5
"""Seconds between two looks at the guarded process and its descendants."""

_watchdog: tuple[int, subprocess.Popen] | None = None
"""(pid of the guarded process, its watchdog): a child forked from this process guards itself anew."""


def guard_descendants() -> int:
    """Make sure this process has a watchdog that kills its descendants once it is gone; returns the
    watchdog's pid (one watchdog per process, started on the first call)."""
    global _watchdog
    pid = os.getpid()
    if _watchdog is None or _watchdog[0] != pid or _watchdog[1].poll() is not None:
        process = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        _watchdog = (pid, process)
    return _watchdog[1].pid


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(pid: int, interval: float = INTERVAL) -> None:
    """Record the descendants of `pid` until it is gone, then kill those still alive (and theirs)."""
    try:
        guarded = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    me = os.getpid()
    seen: dict[int, psutil.Process] = {}
    while _alive(guarded):
        try:
            seen.update((p.pid, p) for p in guarded.children(recursive=True) if p.pid != me)
        except psutil.Error:
            break
        time.sleep(interval)
    victims: list[psutil.Process] = []
    for process in seen.values():
        try:
            if _alive(process):
                victims += [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
    for process in victims:
        try:
            process.kill()
        except psutil.Error:
            continue


if __name__ == "__main__":
    watch(int(sys.argv[1]))
