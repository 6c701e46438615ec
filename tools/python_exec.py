"""The built-in `python` tool: run model-written code in a separate, resource-limited interpreter.

Each call writes the code to a fresh temporary directory and runs it there with
`sys.executable -I -B -X utf8` (isolated mode: no user site, no PYTHON* variables, no .pyc files) in a
new session, with stdin closed and a minimal environment. stdout and stderr are read together, at
most `max_output_bytes` of them; the directory is deleted afterwards. The reply is the program's
output plus a status line when it did not exit cleanly ("Exit status 1", "Killed: exceeded the 5 s
time limit", ...); a Python error such as `MemoryError` shows in the traceback it printed.

Threat model. This guards against accidents and a misbehaving model on a machine we control; it is
not a security boundary against a determined attacker (no seccomp filter, same kernel, same
filesystem). What holds:
- Time: a wall-clock timeout kills the whole process group (`start_new_session` + `killpg`), and
  RLIMIT_CPU stops CPU-bound processes that leave the group.
- Memory: RLIMIT_AS caps each process's address space (`bytearray(10**10)` is a `MemoryError`).
- Disk: RLIMIT_FSIZE caps the size of any file written (a bigger write fails with "File too
  large"); the working directory is temporary. RLIMIT_NOFILE caps open files.
- Output: never buffered beyond `max_output_bytes`; a program printing more is stopped.
- Processes: RLIMIT_NPROC caps forks. The kernel ignores it for root, so as root the child first
  switches to user `nobody` (65534), which also takes away write access to root's files, the
  ability to signal other users' processes and to mount. The limit counts every process `nobody`
  owns on the machine, so concurrent sandboxes share it, and so do the zombies a fork bomb leaves
  to init (they hold slots until init reaps them, a second or two here).
- Network (root only): the child enters a fresh network namespace (`unshare(CLONE_NEWNET)`) with no
  interfaces up, so even loopback is unreachable.
- Filesystem view (root only): the child enters a private mount namespace. When the interpreter
  lives under a directory `nobody` cannot enter (e.g. a pyenv in root's home), that directory is
  covered with an empty tmpfs in which only the interpreter's prefix is bind-mounted, read-only; so
  the child sees the interpreter and nothing else of, say, root's home.
What does not hold:
- Not root (or root without CAP_SYS_ADMIN): no network or mount isolation, and code runs as the
  calling user, able to read and write whatever that user can; RLIMIT_NPROC then counts all of
  that user's processes. Namespace setup failures are silent (best effort). As root without
  CAP_SYS_ADMIN and an interpreter `nobody` cannot reach, the tool fails with `PermissionError`
  rather than run code as root.
- Reading: `nobody` can read every world-readable file on the machine.
- A process that calls `setsid()` leaves the group and survives the kill; RLIMIT_CPU still ends it
  once it has used its CPU seconds, but a sleeping one lingers (and holds an NPROC slot).
- The limits are per process: a few processes under RLIMIT_NPROC may each use RLIMIT_AS memory.
- Limits are applied in a `preexec_fn`, which CPython documents as unsafe with threads in the
  parent (a deadlock is possible in theory); it only makes system calls prepared beforehand.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from chord_env.tools.schema import tool

NOBODY = 65534
_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 32, 4096, 16384
_MS_PRIVATE = 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run; sizes in bytes, times in seconds."""

    timeout: float = 5.0
    memory: int = 512 * 2**20
    max_processes: int = 64
    max_file_size: int = 16 * 2**20
    max_open_files: int = 64
    max_output_bytes: int = 16_000


def run_python(code: str, limits: Limits = Limits()) -> str:
    """Run `code` as a script in a sandboxed interpreter; return its output and any exit status."""
    workdir = tempfile.mkdtemp(prefix="chord-python-")
    try:
        script = Path(workdir, "main.py")
        script.write_text(code, encoding="utf-8")
        root = os.geteuid() == 0
        if root:
            os.chown(workdir, NOBODY, NOBODY)
            os.chown(script, NOBODY, NOBODY)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-X", "utf8", str(script)],
            cwd=workdir,
            env=_environment(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup(limits, root),
        )
        with proc.stdout:
            output, status = _collect(proc, limits)
        return _format(output, status or _exit_status(proc.returncode))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@tool(timeout=None)
def python(code: str) -> str:
    """Run a Python program in a fresh sandboxed interpreter and return what it prints.

    Each call starts from scratch (no state is kept between calls). Print the values you need.
    Limits: 5 s, 512 MB of memory, no network access; output is cut after 16,000 bytes.

    Args:
        code: A complete Python program, e.g. "import math\\nprint(math.comb(10, 3))".
    """
    return run_python(code)


def _environment(workdir: str) -> dict[str, str]:
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", **threads}


def _child_setup(limits: Limits, root: bool) -> Callable[[], None]:
    """The `preexec_fn`: namespaces and privilege drop (root only), then resource limits."""
    cpu = math.ceil(limits.timeout) + 1
    rlimits = [
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (limits.memory, limits.memory)),
        (resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes)),
        (resource.RLIMIT_FSIZE, (limits.max_file_size, limits.max_file_size)),
        (resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files)),
    ]
    exposed = _exposed_paths() if root else {}

    def setup() -> None:
        if root:
            _libc.unshare(_CLONE_NEWNET)
            if exposed and _private_mounts():
                _expose(exposed)
        for which, values in rlimits:
            resource.setrlimit(which, values)
        if root:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return setup


@functools.cache
def _exposed_paths() -> dict[str, list[str]]:
    """{directory `nobody` cannot enter: [interpreter prefixes inside it]}, usually empty."""
    hidden: dict[str, list[str]] = {}
    for prefix in sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}):
        parts = Path(prefix).parts
        for i in range(2, len(parts) + 1):
            ancestor = str(Path(*parts[:i]))
            if not os.stat(ancestor).st_mode & stat.S_IXOTH:
                hidden.setdefault(ancestor, []).append(prefix)
                break
    return hidden


def _private_mounts() -> bool:
    """Enter a new mount namespace whose mounts do not propagate back to the host's."""
    return _libc.unshare(_CLONE_NEWNS) == 0 and _libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) == 0


def _expose(hidden: dict[str, list[str]]) -> None:
    """Cover each hidden directory with an empty tmpfs and bind-mount the prefixes back, read-only."""
    fds = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for prefixes in hidden.values() for p in prefixes}
    for ancestor in hidden:
        _libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=64k")
    for prefix, fd in fds.items():
        os.makedirs(prefix, exist_ok=True)
        target = prefix.encode()
        _libc.mount(f"/proc/self/fd/{fd}".encode(), target, None, _MS_BIND | _MS_REC, None)
        _libc.mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None)
        os.close(fd)


def _collect(proc: subprocess.Popen[bytes], limits: Limits) -> tuple[bytes, str | None]:
    """Read the merged output until EOF, exit or timeout, then kill the process group.

    The group leader is not reaped until after `killpg`, so its id cannot be reused meanwhile.
    """
    fd = proc.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    cap = limits.max_output_bytes
    chunks: list[bytes] = []
    size = 0
    status = None
    deadline = time.monotonic() + limits.timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            status = f"Killed: exceeded the {limits.timeout:g} s time limit"
            break
        if poller.poll(min(remaining, 0.1) * 1000):
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data[: cap - size])
            size += len(data)
            if size > cap:
                status = f"Killed: output exceeded {cap} bytes"
                break
        elif os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return b"".join(chunks), status


def _exit_status(returncode: int) -> str | None:
    if returncode == 0:
        return None
    if returncode > 0:
        return f"Exit status {returncode}"
    if -returncode == signal.SIGXCPU:
        return "Killed: exceeded the CPU time limit"
    return f"Killed by signal {signal.Signals(-returncode).name}"


def _format(output: bytes, status: str | None) -> str:
    text = output.decode("utf-8", errors="replace")
    if status is None:
        return text or "(no output)"
    separator = "\n" if text and not text.endswith("\n") else ""
    return f"{text}{separator}{status}"
