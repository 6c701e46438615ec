"""The `python` sandbox tool: normal runs, and each kind of runaway program ends with a clear status."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from chord_env.tools import execute, python
from chord_env.tools.python_exec import (
    NOBODY,
    STOP_GRACE_S,
    Limits,
    _exposed_paths,
    isolation_refusal,
    run_python,
)
from chord_env.types import ToolCall

ROOT = os.geteuid() == 0
FAST = Limits(timeout=2.0)
REFUSAL = isolation_refusal()
pytestmark = pytest.mark.skipif(REFUSAL is not None, reason=f"the kernel refuses the sandbox here: {REFUSAL}")


def _sandbox_processes() -> list[tuple[int, str]]:
    """(pid, state) of processes left by sandboxes, zombies included: as root every process of
    `nobody`, otherwise those whose command line names a sandbox's temp directory."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            if ROOT:
                mine = int(status["Uid"].split()[0]) == NOBODY
            else:
                mine = b"chord-python-" in (entry / "cmdline").read_bytes()
            if mine:
                found.append((int(entry.name), status["State"].split()[0]))
        except (OSError, KeyError, ValueError):
            continue
    return found


def _wait_until_gone(seconds: float, zombies_too: bool = True) -> list[tuple[int, str]]:
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in _sandbox_processes() if zombies_too or p[1] != "Z"]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_print_through_execute() -> None:
    result = execute(ToolCall("python", {"code": "print(sum(range(10)))"}), {"python": python})
    assert result.error is None and result.content == "45\n"


def test_no_output_and_exit_status() -> None:
    assert run_python("x = 1", FAST) == "(no output)"
    out = run_python("print('bye')\nraise SystemExit(3)", FAST)
    assert out == "bye\nExit status 3"


def test_exception_shows_traceback_and_status() -> None:
    out = run_python("1 / 0", FAST)
    assert "ZeroDivisionError: division by zero" in out and out.endswith("Exit status 1")


def test_memory_bomb() -> None:
    out = run_python("x = bytearray(10**10)", FAST)
    assert "MemoryError" in out


def test_growing_list_memory_bomb() -> None:
    out = run_python("x = []\nwhile True:\n    x.append(bytearray(10**6))", Limits(timeout=30.0))
    assert "MemoryError" in out  # RLIMIT_AS ends it, not the time limit


def test_infinite_loop_is_killed() -> None:
    start = time.monotonic()
    out = run_python("while True:\n    pass", Limits(timeout=1.0))
    assert out == "Killed: exceeded the 1 s time limit"
    assert time.monotonic() - start < 1 + STOP_GRACE_S  # the stop waits at most STOP_GRACE_S


def test_fork_bomb_ends_and_leaves_no_processes() -> None:
    out = run_python("import os\nwhile True:\n    os.fork()", FAST)
    assert "Resource temporarily unavailable" in out or "Killed" in out
    assert _wait_until_gone(1, zombies_too=False) == []  # SIGKILL takes effect within moments
    # Orphaned zombies wait for init to reap them and hold `nobody`'s process slots until then.
    assert _wait_until_gone(10) == []


def test_background_child_is_killed_with_the_group() -> None:
    sleeper = "[sys.executable, '-c', 'import time; time.sleep(60)']"
    code = f"import subprocess, sys\nsubprocess.Popen({sleeper})\nprint('started')"
    assert _wait_until_gone(10) == []
    assert run_python(code, FAST) == "started\n"
    assert _wait_until_gone(3) == []


def test_huge_file_is_refused() -> None:
    code = "with open('big', 'wb') as f:\n    for _ in range(100):\n        f.write(bytes(2**20))"
    out = run_python(code, FAST)
    assert "File too large" in out


def test_output_is_capped() -> None:
    out = run_python("while True:\n    print('y' * 1000)", Limits(timeout=2.0, max_output_bytes=5000))
    assert out.endswith("Killed: output exceeded 5000 bytes")
    assert len(out) < 5100


def test_runs_in_a_private_tmp_with_only_its_script() -> None:
    out = run_python("import os, json\nprint(json.dumps([os.getcwd(), sorted(os.listdir()), os.environ['HOME'], os.environ['TMPDIR']]))", FAST)
    cwd, listing, home, tmpdir = json.loads(out)
    # an interpreter that lives under /tmp (a checkout cloned there) is bound back over the scratch
    interpreter = {Path(p).relative_to("/tmp").parts[0] for p in {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
                   if p.startswith("/tmp/")}
    assert (cwd, home, tmpdir) == ("/tmp", "/tmp", "/tmp") and set(listing) == {"main.py"} | interpreter


@pytest.mark.skipif(not ROOT, reason="privileges are dropped only when running as root")
def test_runs_as_nobody_and_cannot_touch_callers_files(tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_text("s3cret")
    os.chmod(tmp_path, 0o700)
    out = run_python(f"import os\nprint(os.getuid())\nprint(open({str(target)!r}).read())", FAST)
    assert out.startswith(f"{NOBODY}\n") and "s3cret" not in out
    assert "PermissionError" in out or "FileNotFoundError" in out  # the caller's /tmp is not even visible


def test_socket_to_loopback_fails() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')"
        out = run_python(code, FAST)
    assert "connected" not in out.splitlines() and "OSError" in out


@pytest.mark.skipif(not (ROOT and _exposed_paths()), reason="the interpreter is reachable by nobody here")
def test_a_hidden_interpreter_directory_shows_only_the_interpreter() -> None:
    for ancestor, prefixes in _exposed_paths().items():
        visible = sorted({Path(p).relative_to(ancestor).parts[0] for p in prefixes})
        assert run_python(f"import os\nprint(sorted(os.listdir({ancestor!r})))", FAST) == f"{visible}\n"
