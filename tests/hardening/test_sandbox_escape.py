"""The python sandbox holds: nothing a call starts outlives it, calls cannot reach each other, the
scratch space is private and capped, and isolation fails closed (claims of `python_exec`'s docstring).

Processes are found from the host's /proc by a token in their command line. Waits for a process to
appear have generous deadlines; nothing asserts on how fast anything runs. Where the kernel refuses
the namespaces, the isolation tests skip with its reason, and the fail-closed test still runs.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from chord_env.tools.python_exec import NOBODY, Limits, _exposed_paths, isolation_refusal, run_python

ROOT = os.geteuid() == 0
FAST = Limits(timeout=10.0)
APPEAR_S = 30.0  # how long a process started inside a call may take to show up on a loaded machine
_libc = ctypes.CDLL(None, use_errno=True)


REFUSAL = isolation_refusal()
needs_isolation = pytest.mark.skipif(REFUSAL is not None, reason=f"the kernel refuses the sandbox here: {REFUSAL}")


def _processes_with(token: str) -> list[int]:
    """Host pids whose command line contains `token` (zombies have none and are not counted)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for(token: str, count: int) -> list[int]:
    deadline = time.monotonic() + APPEAR_S
    while len(found := _processes_with(token)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _escapers(token: str) -> str:
    """A program that leaves a setsid() child and a double-forked, setsid() grandchild sleeping."""
    return f"""
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(60)  # {token}"])
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)  # {token}"])
    os._exit(0)
deadline = time.monotonic() + {APPEAR_S}
while time.monotonic() < deadline:
    mine = [p for p in os.listdir("/proc") if p.isdigit()]
    if sum(b"{token}" in open(f"/proc/{{p}}/cmdline", "rb").read() for p in mine) >= 2:
        print("both started", flush=True)
        break
    time.sleep(0.01)
"""


@needs_isolation
@pytest.mark.parametrize("ending", ["exit", "timeout", "too much output"])
def test_no_process_of_a_call_outlives_it(ending: str) -> None:
    token = f"escaper-{uuid.uuid4().hex}"
    endings = {"exit": "", "timeout": "time.sleep(60)", "too much output": "print('y' * 10**6)"}
    code = _escapers(token) + endings[ending]
    try:
        out = run_python(code, FAST)
        left = _processes_with(token)  # at once: the call must be over when run_python returns
    finally:
        _kill(_processes_with(token))
    assert out.startswith("both started\n")
    assert left == []


@needs_isolation
def test_a_call_cannot_see_a_concurrent_calls_files_processes_or_sockets() -> None:
    token = f"secret-{uuid.uuid4().hex}"
    key = int(token[-7:], 16)
    holder = f"""
import ctypes, os, socket, subprocess, sys
for d in (".", "/tmp", "/var/tmp", "/dev/shm"):
    with open(os.path.join(d, "{token}"), "w") as f:
        f.write("{token}")
server = socket.socket(socket.AF_UNIX)
server.bind("\\0{token}")
server.listen()
assert ctypes.CDLL(None).shmget({key}, 4096, 0o1666) >= 0
subprocess.run([sys.executable, "-c", "import time; time.sleep(60)  # {token}"])
"""
    seeker = f"""
import ctypes, os, socket
found = []
for top in ("/", "/tmp", "/var/tmp", "/dev/shm"):
    for path, dirs, files in os.walk(top, onerror=lambda e: None):
        if path.startswith(("/proc", "/sys")):
            dirs[:] = []
        found += [os.path.join(path, n) for n in dirs + files if "{token}" in n]
for pid in filter(str.isdigit, os.listdir("/proc")):
    if b"{token}" in open(f"/proc/{{pid}}/cmdline", "rb").read():
        found.append(f"process {{pid}}")
try:
    socket.socket(socket.AF_UNIX).connect("\\0{token}")
    found.append("abstract socket")
except OSError:
    pass
if ctypes.CDLL(None).shmget({key}, 0, 0) >= 0:
    found.append("SysV shared memory")
print(sorted(set(found)))
"""
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(run_python(holder, Limits(timeout=APPEAR_S + 10))))
    first.start()
    try:
        assert _wait_for(token, 1), "the first call did not start its holder process"
        second = run_python(seeker, Limits(timeout=60.0))
    finally:
        _kill(_processes_with(token))
        first.join()
        shm = _libc.shmget(key, 0, 0)
        if shm >= 0:  # left on the host by an unisolated call
            _libc.shmctl(shm, 0, None)  # IPC_RMID
    assert results and "Traceback" not in results[0], results
    assert second == "[]\n"


@needs_isolation
def test_files_written_by_a_call_vanish_with_it() -> None:
    token = f"leftover-{uuid.uuid4().hex}"
    dirs = ("/tmp", "/var/tmp", "/dev/shm")
    code = f"for d in {dirs!r}:\n    open(d + '/{token}', 'w').write('x')\nprint('written')"
    try:
        out = run_python(code, FAST)
        left = [d for d in dirs if os.path.exists(f"{d}/{token}")]
    finally:
        for d in dirs:
            Path(d, token).unlink(missing_ok=True)
    assert out == "written\n" and left == []
    assert run_python(f"import os\nprint([d for d in {dirs!r} if os.path.exists(d + '/{token}')])", FAST) == "[]\n"


@needs_isolation
def test_scratch_is_one_capped_tmpfs_and_every_other_mount_is_read_only() -> None:
    cap = 4 * 2**20
    code = """
import errno, json, os
sizes = {d: os.statvfs(d).f_blocks * os.statvfs(d).f_frsize for d in ("/tmp", "/var/tmp", "/dev/shm")}
written, error = 0, None
try:
    for i in range(100):
        with open(("/tmp", "/var/tmp", "/dev/shm")[i % 3] + f"/fill{i}", "wb") as f:
            f.write(bytes(2**19))
            f.flush()
        written += 2**19
except OSError as e:
    error = errno.errorcode[e.errno]
writable = set()
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    if "rw" in fields[5].split(","):
        writable.add(fields[4])
print(json.dumps({"sizes": sizes, "written": written, "error": error, "writable": sorted(writable)}))
"""
    report = json.loads(run_python(code, Limits(timeout=30.0, max_disk=cap)))
    assert report["sizes"] == {"/tmp": cap, "/var/tmp": cap, "/dev/shm": cap}
    assert report["error"] == "ENOSPC" and cap - 2**19 <= report["written"] <= cap  # one file's rounding
    assert set(report["writable"]) <= {"/tmp", "/var/tmp", "/dev/shm", "/proc"}


@needs_isolation
@pytest.mark.skipif(not ROOT, reason="the script is root-owned only when the sandbox runs as root")
def test_the_script_is_root_owned_and_read_only() -> None:
    code = "import os\nst = os.stat(__file__)\nprint(os.getuid(), st.st_uid, oct(st.st_mode & 0o777))\n"
    code += "open(__file__, 'a')"
    out = run_python(code, FAST)
    assert out.startswith(f"{NOBODY} 0 0o444\n") and "PermissionError" in out


_REFUSED_UNSHARE = """
import ctypes, json
from chord_env.tools import execute
from chord_env.tools.python_exec import make_python, run_python
from chord_env.types import ToolCall
ctypes.CDLL(None).prctl(24, 21, 0, 0, 0)  # PR_CAPBSET_DROP CAP_SYS_ADMIN: the launcher cannot unshare
strict = make_python()
result = execute(ToolCall("python", {"code": "print('ran')"}), {"python": strict})
try:
    opted_out = run_python("print('ran')", allow_unisolated=True)
except PermissionError as e:
    opted_out = f"PermissionError: {e}"
print(json.dumps({
    "error": result.error, "content": result.content, "opted_out": opted_out,
    "descriptions": [strict.description, make_python(allow_unisolated=True).description],
}))
"""


def test_network_isolation_fails_closed_when_unshare_is_refused() -> None:
    done = subprocess.run([sys.executable, "-c", _REFUSED_UNSHARE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["error"] == "tool_exception" and "ran" not in report["content"]
    assert "SandboxUnavailable: cannot isolate the code" in report["content"]
    assert "allow_unisolated=True" in report["content"]
    if ROOT and _exposed_paths():  # nobody cannot reach the interpreter, and without mounts it cannot be shown
        assert report["opted_out"].startswith("PermissionError: user nobody cannot reach the interpreter")
    else:
        assert report["opted_out"] == "ran\n"
    strict, opted_out = report["descriptions"]
    assert "no network access" in strict and "no network access" not in opted_out


@needs_isolation
def test_an_interpreter_inside_the_private_scratch_still_runs():
    """A checkout under /tmp (as CI clones one) has its venv under the directory the private scratch
    covers: its prefix is bound back read-only, so the call still finds its interpreter."""
    import shutil
    import tempfile

    home = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "venv")], check=True, timeout=120)
        sites = [p for p in sys.path if p.endswith("site-packages")]
        code = (f"import site; [site.addsitedir(p) for p in {sites!r}]\n"
                "from chord_env.tools.python_exec import Limits, run_python\n"
                "print(run_python('import sys, os; print(6 * 7, sys.prefix, os.access(sys.prefix, os.W_OK))', Limits(timeout=20.0)))")
        done = subprocess.run([str(home / "venv" / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=300)
        assert done.stdout.split() == ["42", str((home / "venv").resolve()), "False"], done.stdout + done.stderr
    finally:
        shutil.rmtree(home, ignore_errors=True)
