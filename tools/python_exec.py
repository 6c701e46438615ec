"""The built-in `python` tool: run model-written code in an isolated, resource-limited interpreter.

Each call starts a launcher (`chord_env.tools.sandbox_init`, run as its own script) which sets up the
isolation and runs the code with `sys.executable -I -B -X utf8 main.py` (isolated mode: no user site,
no PYTHON* variables, no .pyc files), stdin closed and a minimal environment. stdout and stderr are
read together, at most `max_output_bytes` of them. The reply is the program's output plus a status
line when it did not exit cleanly ("Exit status 1", "Killed: exceeded the 5 s time limit", ...); a
Python error such as `MemoryError` shows in the traceback it printed.

Threat model. This guards against a misbehaving or hostile model on a machine we control. It is not a
boundary against a kernel exploit (no seccomp filter, same kernel). Isolation needs root with
CAP_SYS_ADMIN (as on a plain machine or VM; a default Docker container lacks it). What holds, each
claim checked in tests/hardening/test_sandbox_escape.py or tests/tools/test_python_sandbox.py:
- Processes: each call runs in its own PID namespace under an init the launcher forks. When the
  program exits, or the call times out, init dies and the kernel kills and reaps every process left
  in the namespace, including those that called `setsid()` or double-forked, before the call returns
  (man 7 pid_namespaces). Processes of one call cannot see or signal another's, and its /proc shows
  its own processes only. A PID namespace rather than a cgroup: the kernel kills and reaps the
  namespace before init's parent can wait for init, so "gone when the call returns" needs no polling,
  and it needs only the CAP_SYS_ADMIN the network namespace needs anyway; killing a cgroup as a whole
  (`cgroup.kill`, cgroup v2, Linux 5.14) needs a writable, delegated cgroup v2 subtree, which
  containers often lack, and completes asynchronously. The code runs as user `nobody` (65534), so it cannot write root's files,
  signal other users' processes or mount; RLIMIT_NPROC caps its processes (the kernel counts every
  process `nobody` owns, so concurrent calls share the limit).
- Network: a fresh network namespace with no interfaces up; even loopback is unreachable. Abstract
  Unix sockets belong to the network namespace and SysV IPC objects to a fresh IPC namespace, so
  calls cannot reach each other or the host through them either.
- Files: in a private mount namespace every existing mount is read-only, and /tmp, /var/tmp and
  /dev/shm are one private tmpfs of `max_disk` bytes, which is all a call can ever write (and the
  only RAM it can fill outside RLIMIT_AS); it vanishes with the call, and no other call can see it.
  The script is a root-owned, read-only file in it (the working directory is /tmp). RLIMIT_FSIZE caps
  any one file. When the interpreter lives under a directory `nobody` cannot enter (e.g. a pyenv in
  root's home), that directory is covered with an empty tmpfs showing only the interpreter's prefix.
  When it lives under a scratch directory (a checkout in /tmp), its prefix is bound back, read-only,
  over the private scratch.
- Time: a wall-clock timeout ends the call as above; RLIMIT_CPU stops CPU-bound processes.
- Memory: RLIMIT_AS caps each process's address space (`bytearray(10**10)` is a `MemoryError`).
- Output: never buffered beyond `max_output_bytes`; a program printing more is stopped.
- Fails closed: when the namespaces or mounts cannot be set up (`unshare` refused, no CAP_SYS_ADMIN,
  not root), the call raises `SandboxUnavailable` without running the code, unless the tool was built
  with `allow_unisolated=True`.
What does not hold:
- Reading: `nobody` can read every world-readable file on the machine.
- The limits are per process: a few processes under RLIMIT_NPROC may each use RLIMIT_AS memory.
- With `allow_unisolated=True` on a machine that refuses the namespaces, the code runs in a fresh
  temporary directory in a new session, with the same resource limits (as `nobody` when root), but
  with the network, the machine's /tmp and /dev/shm, and the machine's processes in reach; a process
  that leaves the session (`setsid()`) survives the call until RLIMIT_CPU ends it. Not root: the code
  runs as the calling user and can read and write whatever that user can. Root whose interpreter
  `nobody` cannot reach: `PermissionError` rather than run code as root.
"""

from __future__ import annotations

import functools
import json
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

from chord_env.tools.schema import Tool, tool

NOBODY = 65534
LAUNCHER = Path(__file__).with_name("sandbox_init.py")
STOP_GRACE_S = 10.0


class SandboxUnavailable(RuntimeError):
    """The sandbox could not isolate the call, and running it without isolation was not allowed."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run; sizes in bytes, times in seconds."""

    timeout: float = 5.0
    memory: int = 512 * 2**20
    max_processes: int = 64
    max_file_size: int = 16 * 2**20
    max_open_files: int = 64
    max_output_bytes: int = 16_000
    max_disk: int = 64 * 2**20


def run_python(code: str, limits: Limits = Limits(), allow_unisolated: bool = False) -> str:
    """Run `code` as a script in a sandboxed interpreter; return its output and any exit status.

    Raises `SandboxUnavailable` when isolation cannot be set up, unless `allow_unisolated`.
    """
    try:
        return _launch(code, limits, isolate=True)
    except SandboxUnavailable as e:
        if not allow_unisolated:
            raise SandboxUnavailable(
                f"cannot isolate the code ({e}); refusing to run it with network access "
                "(allow_unisolated=True opts out)"
            ) from None
    return _launch(code, limits, isolate=False)


def isolation_refusal() -> str | None:
    """Why this machine refuses to isolate sandbox calls, or None when it isolates them."""
    try:
        _launch("", Limits(timeout=30.0), isolate=True)
    except SandboxUnavailable as e:
        return str(e)
    return None


def make_python(limits: Limits = Limits(), allow_unisolated: bool = False) -> Tool:
    """Build the `python` tool with `limits`; `allow_unisolated` runs code even without isolation."""

    def python(code: str) -> str:
        return run_python(code, limits, allow_unisolated)

    network = "network access may be available" if allow_unisolated else "no network access"
    python.__doc__ = f"""Run a Python program in a fresh sandboxed interpreter and return what it prints.

    Each call starts from scratch (no state or files are kept between calls). Print the values you
    need. Limits: {limits.timeout:g} s, {limits.memory // 2**20} MB of memory, {network}; output is cut
    after {limits.max_output_bytes:,} bytes.

    Args:
        code: A complete Python program, e.g. "import math\\nprint(math.comb(10, 3))".
    """
    return tool(timeout=None)(python)


python = make_python()


def _launch(code: str, limits: Limits, isolate: bool) -> str:
    root = os.geteuid() == 0
    if not isolate and root and _exposed_paths():
        raise PermissionError(
            f"user nobody cannot reach the interpreter {sys.executable}; refusing to run code as root"
        )
    workdir = None if isolate else tempfile.mkdtemp(prefix="chord-python-")
    control_read, control_write = os.pipe()
    try:
        config = {
            "isolate": isolate,
            "parent": os.getpid(),
            "control_fd": control_write,
            "python": sys.executable,
            "uid": NOBODY,
            "env": _environment(),
            "rlimits": _rlimits(limits),
            "disk": limits.max_disk,
            "exposed": _exposed_paths() if root else {},
            "prefixes": _prefixes(),
            "workdir": workdir,
        }
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", str(LAUNCHER), json.dumps(config)],
            cwd="/",
            env=_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(control_write,),
            start_new_session=True,
        )
        os.close(control_write)
        control_write = -1
        try:
            proc.stdin.write(code.encode("utf-8"))
            proc.stdin.close()
        except BrokenPipeError:  # the launcher failed before reading; its report says why
            pass
        with proc.stdout:
            output, status = _collect(proc, limits)
        messages = _read_messages(control_read)
    finally:
        os.close(control_read)
        if control_write >= 0:
            os.close(control_write)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    if "unavailable" in messages:
        raise SandboxUnavailable(messages["unavailable"])
    if "error" in messages:
        raise RuntimeError(f"the sandbox failed: {messages['error']}")
    if status is None:
        status = _exit_status(messages.get("returncode", proc.returncode))
    return _format(output, status)


def _environment() -> dict[str, str]:
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **threads}


def _rlimits(limits: Limits) -> list[tuple[int, int, int]]:
    cpu = math.ceil(limits.timeout) + 1
    return [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, limits.memory, limits.memory),
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_FSIZE, limits.max_file_size, limits.max_file_size),
        (resource.RLIMIT_NOFILE, limits.max_open_files, limits.max_open_files),
    ]


def _prefixes() -> list[str]:
    """The interpreter's prefixes (a venv's and its base's), resolved."""
    return sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)})


@functools.cache
def _exposed_paths() -> dict[str, list[str]]:
    """{directory `nobody` cannot enter: [interpreter prefixes inside it]}, usually empty."""
    hidden: dict[str, list[str]] = {}
    for prefix in _prefixes():
        parts = Path(prefix).parts
        for i in range(2, len(parts) + 1):
            ancestor = str(Path(*parts[:i]))
            if not os.stat(ancestor).st_mode & stat.S_IXOTH:
                hidden.setdefault(ancestor, []).append(prefix)
                break
    return hidden


def _collect(proc: subprocess.Popen[bytes], limits: Limits) -> tuple[bytes, str | None]:
    """Read the merged output until EOF, exit or timeout, then stop the call.

    On timeout or too much output the launcher gets SIGTERM and ends the call (killing the whole
    PID namespace) before it exits; `STOP_GRACE_S` later the process group gets SIGKILL regardless,
    which also ends what is left of an unisolated call. The launcher is not reaped until after
    `killpg`, so its id cannot be reused meanwhile.
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
        elif _exited(proc):
            break
    if not _exited(proc):
        os.kill(proc.pid, signal.SIGTERM)
        grace = time.monotonic() + STOP_GRACE_S
        while not _exited(proc) and time.monotonic() < grace:
            time.sleep(0.01)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return b"".join(chunks), status


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the launcher has exited, leaving it unreaped."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _read_messages(fd: int) -> dict[str, object]:
    """The launcher's JSON lines, merged (the first of each key wins)."""
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    messages: dict[str, object] = {}
    for line in data.splitlines():
        for key, value in json.loads(line).items():
            messages.setdefault(key, value)
    return messages


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
