"""The `python` sandbox's launcher: `python -I -B sandbox_init.py CONFIG`, started by `python_exec`.

It runs as the caller (root, normally), in isolated mode where `chord_env` is not importable, so it
uses the standard library only. It reads the program's source from stdin, then:

- isolated (`CONFIG["isolate"]`): `unshare` new PID, network, mount and IPC namespaces; in the mount
  namespace make every existing mount read-only (`mount_setattr` with `AT_RECURSIVE`, man 2
  mount_setattr) and put one tmpfs of `disk` bytes under /tmp, /var/tmp and /dev/shm, the script a
  root-owned read-only file in it; fork the namespace's init (PID 1), which mounts a /proc of the new
  namespace, forks the program (PID 2) and exits when the program does. The kernel then kills every
  other process in the namespace and reaps it before init's parent sees init exit (man 7
  pid_namespaces; `zap_pid_ns_processes` in kernel/pid_namespace.c), so the launcher's exit means
  the whole call is gone. On SIGTERM (the caller's timeout) the launcher SIGKILLs init and waits for
  it, with the same effect.
- plain (the caller opted out of isolation): write the script into `CONFIG["workdir"]` and fork the
  program; on SIGTERM kill the process group.

The program runs with `CONFIG["rlimits"]` and, when the launcher is root, as user `CONFIG["uid"]`
with no supplementary groups. The launcher tells its caller what happened in JSON lines on the file
descriptor `CONFIG["control_fd"]`, which the program never holds (it is close-on-exec):
`{"unavailable": why}` when isolation could not be set up (no user code ran), `{"error": why}` for
another failure, `{"returncode": n}` for the program's exit (negative: killed by signal -n).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any, NoReturn

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
NAMESPACES = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC = 2, 4, 8, 4096, 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (asm-generic/unistd.h, Linux 5.12)
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 1
SCRATCH = {"var-tmp": "/var/tmp", "shm": "/dev/shm", "tmp": "/tmp"}  # "tmp" last, see _prepare_mounts

_libc = ctypes.CDLL(None, use_errno=True)
_child: int | None = None


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def main() -> NoReturn:
    config = json.loads(sys.argv[1])
    control = config["control_fd"]
    os.set_inheritable(control, False)
    signal.signal(signal.SIGTERM, _stop_isolated if config["isolate"] else _stop_group)
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != config["parent"]:
        os._exit(1)
    code = sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        (_run_isolated if config["isolate"] else _run_plain)(config, code)
    except Exception as e:
        _report(control, error=f"{type(e).__name__}: {e}")
    os._exit(1)


def _run_isolated(config: dict[str, Any], code: bytes) -> None:
    global _child
    control = config["control_fd"]
    try:
        _check(_libc.unshare(NAMESPACES), "unshare(CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWIPC)")
        _prepare_mounts(config, code)
    except OSError as e:
        _report(control, unavailable=str(e))
        os._exit(1)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _child = os.fork()
    if _child == 0:
        _init(config)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.waitpid(_child, 0)
    os._exit(0)


def _prepare_mounts(config: dict[str, Any], code: bytes) -> None:
    """In the new mount namespace: a read-only view of everything, plus a private, capped scratch. An
    interpreter prefix inside a scratch directory (a checkout under /tmp) is bound back read-only over
    the scratch, so the program still finds its interpreter."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    scratch = tuple(os.path.realpath(target) for target in SCRATCH.values())
    covered = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in config["prefixes"]
               if any(p == t or p.startswith(t + "/") for t in scratch)}
    _expose(config["exposed"])
    _read_only("/")
    disk = config["disk"]
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={disk},nr_inodes={disk // 4096},mode=0755")
    for name in SCRATCH:
        os.mkdir(f"/tmp/{name}")
        os.chmod(f"/tmp/{name}", 0o1777)
    script = os.open("/tmp/tmp/main.py", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.write(script, code)
    os.close(script)
    for name, target in SCRATCH.items():  # "tmp" last: it covers the staging tmpfs at /tmp
        if os.path.isdir(target):
            _mount(f"/tmp/{name}", target, None, MS_BIND)
    for prefix, fd in covered.items():
        os.makedirs(prefix, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", prefix, None, MS_BIND | MS_REC)
        os.close(fd)
        _read_only(prefix)


def _read_only(path: str) -> None:
    """Make the mount at `path` and every mount under it read-only (man 2 mount_setattr)."""
    attr = _MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    _check(
        _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)),
        f"mount_setattr({path}, MOUNT_ATTR_RDONLY, AT_RECURSIVE)",
    )


def _expose(hidden: dict[str, list[str]]) -> None:
    """Cover each directory the program's user cannot enter with an empty tmpfs and bind-mount the
    interpreter's prefixes inside it back (made read-only with everything else)."""
    fds = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for prefixes in hidden.values() for p in prefixes}
    for ancestor in hidden:
        _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    for prefix, fd in fds.items():
        os.makedirs(prefix, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", prefix, None, MS_BIND | MS_REC)
        os.close(fd)


def _init(config: dict[str, Any]) -> NoReturn:
    """PID 1 of the new namespace: mount its /proc, run the program, exit (killing all) when it does."""
    control = config["control_fd"]
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as e:
        _report(control, unavailable=str(e))
        os._exit(1)
    program = os.fork()
    if program == 0:
        _exec_program(config, "/tmp", "/tmp/main.py")
    while (pid_status := os.wait())[0] != program:
        pass
    _report(control, returncode=os.waitstatus_to_exitcode(pid_status[1]))
    os._exit(0)


def _run_plain(config: dict[str, Any], code: bytes) -> None:
    global _child
    workdir = config["workdir"]
    script = os.path.join(workdir, "main.py")
    with open(script, "wb") as f:
        f.write(code)
    os.chmod(script, 0o444)
    if os.geteuid() == 0:
        os.chown(workdir, config["uid"], config["uid"])
    _child = os.fork()
    if _child == 0:
        _exec_program(config, workdir, script)
    _, status = os.waitpid(_child, 0)
    _report(config["control_fd"], returncode=os.waitstatus_to_exitcode(status))
    os._exit(0)


def _exec_program(config: dict[str, Any], cwd: str, script: str) -> NoReturn:
    """In the forked child: limits, privilege drop, then exec the interpreter on the script."""
    try:
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):  # as subprocess's restore_signals
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(cwd)
        for which, soft, hard in config["rlimits"]:
            resource.setrlimit(which, (soft, hard))
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(config["uid"])
            os.setuid(config["uid"])
        env = {**config["env"], "HOME": cwd, "TMPDIR": cwd}
        os.execve(config["python"], [config["python"], "-I", "-B", "-X", "utf8", script], env)
    except Exception as e:
        _report(config["control_fd"], error=f"cannot start the program: {type(e).__name__}: {e}")
    os._exit(127)


def _stop_isolated(signum: int, frame: object) -> None:
    if _child is None:
        os._exit(1)
    os.kill(_child, signal.SIGKILL)  # init's death kills the namespace; main() then reaps init


def _stop_group(signum: int, frame: object) -> None:
    os.killpg(0, signal.SIGKILL)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    arguments = [None if s is None else s.encode() for s in (source, target, fstype)]
    _check(_libc.mount(*arguments, flags, None if data is None else data.encode()), f"mount({source}, {target})")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what} failed: {os.strerror(errno)}")


def _report(control: int, **message: object) -> None:
    os.write(control, (json.dumps(message) + "\n").encode())


if __name__ == "__main__":
    main()
