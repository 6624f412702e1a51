"""Run untrusted, model-generated Python (HumanEval completions and their tests) in a sandbox.

The code always runs in a separate process, never through ``exec`` in the caller. The
result of a run is a :class:`RunResult`; a HumanEval-style problem is checked with
:func:`check_program` and many at once with :func:`check_many`.

Threat model
------------
This is *containment for benchmark code*, not a hardened jail. The code we run is written
by a language model: it is usually harmless but may loop forever, allocate without bound,
fork, write files or (rarely) reach for the network or the caller's secrets. The layers
below stop such accidents and casual misbehaviour from hurting the caller, its files, its
processes or its network. They do not claim to stop a determined attacker with a kernel
or CPython exploit; for truly hostile code use a VM or a container runtime.

Layers, outermost first (what was actually in force is reported in
:attr:`RunResult.isolation`, what this machine offers by :func:`sandbox_capabilities`):

1. **Separate process and session.** The child is started with ``subprocess`` in a new
   session (its own process group). When it exits, or when the wall-clock timeout
   expires, every process left in that session or process group is killed with SIGKILL,
   and so is every process of the sandbox uid that still carries this run's marker in
   its environment (which catches a grandchild that called ``setsid()``).
2. **Resource limits** (``setrlimit`` in the child before ``exec``): CPU time
   (RLIMIT_CPU), address space (RLIMIT_AS), file size (RLIMIT_FSIZE), no core dumps
   (RLIMIT_CORE = 0) and a process count (RLIMIT_NPROC).
3. **Unprivileged uid.** RLIMIT_NPROC never binds root, so when the caller is root the
   child drops to ``nobody``/``nogroup`` (65534) before ``exec`` (``setgroups([])``,
   ``setgid``, ``setuid``). The kernel then enforces the process limit and the usual file
   permissions: the child cannot write the caller's files nor read root-only ones.
   RLIMIT_NPROC counts *all* tasks (processes and threads) of a uid, so the limit is set
   to the number of tasks the uid already has plus ``max_processes``, so ``max_processes``
   is the sandbox's own budget (16 by default: enough for a program with a few helper
   processes or threads, far too few for a fork bomb). When the caller is not root the
   uid is the caller's own, whose other processes are counted at start and left alone.
   Interpreters installed under a directory that other users cannot enter (pyenv or uv
   under ``/root`` is the usual case) are made reachable inside a private mount
   namespace: a tmpfs is mounted over the closed directory and only the interpreter's
   install prefix is bind-mounted back, read-only, at the same path. This also hides the
   rest of that directory (``/root``'s dotfiles, keys, caches) from the child. If neither
   works the child keeps the caller's uid, ``nproc_binds`` is False and process creation
   is stopped only by the in-child guard (layer 6).
   **File-system view.** Where a mount namespace is available (the caller is root, or
   user namespaces are allowed), the child is ``chroot``-ed into a minimal root built on a
   1 MiB tmpfs: read-only binds of ``/usr``, ``/bin``, ``/sbin``, ``/lib*`` (symlinks
   where the host has symlinks), the interpreter's installation and ``/etc/ld.so.cache``,
   the device files ``/dev/null``, ``/dev/zero``, ``/dev/full``, ``/dev/random`` and
   ``/dev/urandom``, and the run's own folder. Nothing else exists for the child: no
   ``/etc/passwd``, ``/proc``, ``/sys``, ``/home``, ``/root``, ``/tmp``, ``/var`` or the
   caller's sources, whatever the code does below the interpreter. The result says
   ``fs_view: True``.
4. **No network.** The child gets a new, empty network namespace (``unshare`` with
   CLONE_NEWNET before dropping privileges; an unprivileged caller also needs a user
   namespace for that). Inside, even 127.0.0.1 is unreachable. Where namespaces are not
   available the in-child guard still denies sockets and name resolution, and the result
   says ``netns: False``.
5. **Clean start.** A fresh temporary directory, owned by the sandbox uid, is the working
   directory and ``HOME``/``TMPDIR``; it is removed afterwards. The environment holds
   only ``PATH``, ``LANG``, ``HOME``, ``TMPDIR``, ``PYTHONDONTWRITEBYTECODE``,
   ``PYTHONHASHSEED`` and the run marker: nothing is inherited. File descriptors are
   closed, stdin is ``/dev/null``. The interpreter is ``sys.executable`` (its real path)
   in isolated mode without ``site`` (``-I -S -B``), so only the standard library is
   importable; note that ``-I`` makes the interpreter ignore ``PYTHON*`` variables, so
   the hash seed is random per run (set iteration order is not reproducible).
6. **In-child audit guard.** A bootstrap script installs a ``sys.addaudithook`` hook
   before the code runs. It denies: sockets and name resolution (unless
   ``network=True``); ``fork``/``exec``/``spawn``/``system``/``posix_spawn``/
   ``subprocess`` and importing ``_posixsubprocess`` (unless ``allow_subprocess=True``;
   so ``import subprocess`` itself fails); ``ctypes``, sub-interpreters and the private
   test modules; ``resource.setrlimit``; tracing and profiling hooks; ``gc`` object
   walks; raw code-object construction; killing other processes; opening files for
   writing (and opening directories, and any relative path with ``..``) outside the
   working directory; reading files or listing folders anywhere but the working directory,
   the interpreter's own installation (its standard library) and the time-zone data (so
   ``/etc/passwd``, ``/proc``, the caller's sources and home stay unread); and deleting,
   renaming, linking, ``chmod``/``chown``/``truncate``/``utime`` of paths outside it. Device files other than ``/dev/null``, ``/dev/zero``,
   ``/dev/full``, ``/dev/random`` and ``/dev/urandom`` cannot be opened at all. Audit
   hooks are a CPython feature, not a security boundary: code that escapes the
   interpreter (a CPython bug, a ``fork`` + ``exec`` of another program when
   subprocesses are allowed, a syscall with no audit event such as ``os.mkfifo``) is
   only held by layers 1 to 5.

Known gaps: there is no PID namespace (without the file-system view the child can list
other processes in ``/proc``, though as ``nobody`` it can signal none of them) and no cgroup
(memory is bounded per process by RLIMIT_AS, not per tree). With the file-system view, what
the child can read is exactly the view's content: the system's programs and libraries under
``/usr`` and ``/lib*`` (world-readable, the same on every machine of a distribution), the
Python installation and its own folder. Without it (no mount namespace: an unprivileged
caller where user namespaces are disabled), reads outside the working directory and the
Python installation are stopped by the in-child guard only, so code that escapes the
interpreter can still read every world-readable file (``/etc``, ``/proc``, world-readable
sources and data), though not what the ``nobody`` uid may not read (``/root`` and other
closed homes, mode-0600 files) nor, when the interpreter lives under a closed directory, the
rest of that directory (hidden by the private mount namespace of layer 3); with
``allow_subprocess=True`` a descendant that both leaves the session and execs with a new
environment escapes the tree kill (it is still bound by the rlimits, the uid and the
network namespace). When the caller is root and the uid drop is unavailable, the child
runs as root and layers 1, 2, 4 and 6 are all that stand between it and the machine.

On platforms without these facilities (anything but Linux) :func:`run_python` refuses to
run and returns a result with status ``"error"``.

Status of a run: ``"passed"`` (exit code 0), ``"failed"`` (any other exit, including an
exception, a syntax error, a MemoryError or a denied operation), ``"timeout"`` (wall
clock or CPU time exceeded) or ``"error"`` (the sandbox itself could not start). As in
the HumanEval harness, a program that calls ``sys.exit(0)`` before its tests run counts as
passed.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from labcore.errors import LabcoreError

try:  # POSIX only
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = [
    "OUTPUT_LIMIT",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "RunResult",
    "SandboxLimits",
    "check_many",
    "check_program",
    "run_python",
    "sandbox_capabilities",
]

#: uid the child drops to when the caller is root (``nobody``).
SANDBOX_UID = 65534
#: gid the child drops to when the caller is root (``nogroup``).
SANDBOX_GID = 65534
#: Characters of stdout and of stderr kept in a :class:`RunResult`.
OUTPUT_LIMIT = 10_000

_MARKER_VAR = "SMCDECODE_SANDBOX_RUN"
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_MS_MOVE = 0x2000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000


# --------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------


def _check_number(name: str, value: Any, *, integer: bool, minimum: float) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise LabcoreError(f"SandboxLimits.{name} must be {kind}, got {value!r}")
    if not math.isfinite(value) or value < minimum:
        raise LabcoreError(f"SandboxLimits.{name} must be finite and >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits and permissions for one sandboxed run.

    Parameters
    ----------
    timeout_s : float
        Wall-clock limit in seconds; on expiry the whole process tree is killed and the
        status is ``"timeout"``.
    cpu_s : int
        CPU-time limit in seconds (RLIMIT_CPU; SIGXCPU, then SIGKILL one second later).
        Exceeding it also gives status ``"timeout"``.
    memory_mb : int
        Address-space limit in MiB (RLIMIT_AS). At least 64: the interpreter needs some.
    max_processes : int
        Tasks (processes and threads, the main one included) the sandbox may have
        (RLIMIT_NPROC, set to the sandbox uid's current task count plus this number).
        Only binds when the child runs as a non-root uid, see
        ``RunResult.isolation["nproc_binds"]``.
    file_size_mb : int
        Largest file the child may write, in MiB (RLIMIT_FSIZE); this includes its
        captured stdout and stderr.
    network : bool
        False (default) denies the network: a fresh network namespace where possible and
        the in-child guard on sockets and name resolution. True allows both.
    allow_subprocess : bool
        False (default) makes the in-child guard deny ``fork``, ``exec``, ``subprocess``
        and friends. True allows them; the children are then held only by the
        process-level layers (rlimits, uid, namespaces, tree kill) and programs other
        than Python run without the guard.

    Raises
    ------
    labcore.errors.LabcoreError
        If a value has the wrong type or is out of range.
    """

    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    max_processes: int = 16
    file_size_mb: int = 16
    network: bool = False
    allow_subprocess: bool = False

    def __post_init__(self) -> None:
        _check_number("timeout_s", self.timeout_s, integer=False, minimum=0.01)
        _check_number("cpu_s", self.cpu_s, integer=True, minimum=1)
        _check_number("memory_mb", self.memory_mb, integer=True, minimum=64)
        _check_number("max_processes", self.max_processes, integer=True, minimum=1)
        _check_number("file_size_mb", self.file_size_mb, integer=True, minimum=1)
        for name in ("network", "allow_subprocess"):
            if not isinstance(getattr(self, name), bool):
                raise LabcoreError(
                    f"SandboxLimits.{name} must be a bool, got {getattr(self, name)!r}"
                )


@dataclass
class RunResult:
    """Outcome of one sandboxed run.

    Attributes
    ----------
    status : str
        ``"passed"`` (exit code 0), ``"failed"`` (other exit code or killed by a signal),
        ``"timeout"`` (wall clock or CPU limit exceeded) or ``"error"`` (the sandbox
        could not start; the reason is in ``stderr``).
    returncode : int or None
        Exit code, negative for a signal (as in :mod:`subprocess`); None if the child
        never started.
    stdout, stderr : str
        Captured output, decoded as UTF-8 (invalid bytes replaced) and cut to
        :data:`OUTPUT_LIMIT` characters each, with a note saying how much was cut.
    duration_s : float
        Wall-clock time of the run, set-up and clean-up included.
    isolation : dict
        The layers actually in force: ``netns`` (new network namespace), ``userns``
        (made inside a user namespace, for non-root callers), ``uid`` (uid of the
        child), ``uid_drop``, ``nproc_binds`` (whether RLIMIT_NPROC is enforced for
        that uid), ``nproc_limit``, ``hidden_dir`` (directory covered by a tmpfs, or
        None), ``audit_guard`` (always True), ``network`` and ``subprocess`` (what was
        allowed), the limits, and ``tree_killed`` (no process of the run was left).
        Empty when the sandbox is unavailable on this platform.
    """

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    isolation: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """bool: True iff the status is ``"passed"``."""
        return self.status == "passed"


# --------------------------------------------------------------------------------------
# The bootstrap that runs inside the child
# --------------------------------------------------------------------------------------

# argv: bootstrap.py WORKDIR PROGRAM NETWORK(0/1) SUBPROCESS(0/1)
# The hook keeps everything it uses in keyword defaults: those are immutable, cannot be
# reassigned without an audited attribute write, and do not go through module globals or
# builtins that the program could monkeypatch.
_BOOTSTRAP = r"""
import sys


def _arm(work, allow_net, allow_sub, readable):
    import pathlib
    import posix

    deny = {
        "code.__new__", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "resource.setrlimit", "resource.prlimit", "cpython.PyInterpreterState_New",
        "sqlite3.enable_load_extension", "sqlite3.load_extension", "fcntl.ioctl",
        "socket.sethostname", "os.startfile", "sys.settrace", "sys.setprofile",
    }
    if not allow_net:
        deny |= {
            "socket.__new__", "socket.bind", "socket.connect", "socket.sendto",
            "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname",
            "socket.gethostbyname_ex", "socket.gethostbyaddr", "socket.getnameinfo",
        }
    if not allow_sub:
        deny |= {
            "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
            "subprocess.Popen", "os.killpg",
        }
    modules = {
        "ctypes", "_ctypes", "_ctypes_test", "_xxsubinterpreters", "_xxinterpchannels",
        "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase",
        "_testimportmultiple", "_testclinic", "_testsinglephase", "_xxtestfuzz", "_dbm",
        "_gdbm", "readline",
    }
    if not allow_sub:
        modules.add("_posixsubprocess")
    for name in modules:
        if name in sys.modules:
            raise SystemExit(f"sandbox bootstrap: {name} is already imported")
    # event -> ((path index, dir_fd index or -1), ...): everything here modifies the file
    # system, so each path must lie inside the working directory.
    path_events = (
        ("os.remove", ((0, 1),)), ("os.rmdir", ((0, 1),)), ("os.mkdir", ((0, 2),)),
        ("os.rename", ((0, 2), (1, 3))), ("os.link", ((0, 2), (1, 3))),
        ("os.symlink", ((1, 2),)), ("os.chmod", ((0, 2),)), ("os.chown", ((0, 3),)),
        ("os.truncate", ((0, -1),)), ("os.utime", ((0, 3),)), ("os.setxattr", ((0, -1),)),
        ("os.removexattr", ((0, -1),)), ("os.chflags", ((0, -1),)),
        ("os.lchflags", ((0, -1),)), ("sqlite3.connect", ((0, -1),)),
    )
    devices = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
    # event -> path index: these read the file system (list a folder), like open for reading
    read_events = (("os.listdir", 0), ("os.scandir", 0))
    path_classes = tuple(
        c for c in vars(pathlib).values() if isinstance(c, type) and c.__module__ == "pathlib"
    )

    def hook(
        event, args, *, _deny=frozenset(deny), _modules=frozenset(modules),
        _path_events=path_events, _path_names=frozenset(e for e, _ in path_events),
        _work=work, _allow_sub=allow_sub, _lstat=posix.lstat, _stat=posix.stat,
        _readlink=posix.readlink, _getcwd=posix.getcwd, _getpid=posix.getpid,
        _fspath=posix.fspath, _type=type, _str=str, _bytes=bytes, _int=int,
        _isinstance=isinstance, _len=len, _reversed=reversed, _readable=tuple(readable),
        _read_events=dict(read_events),
        _paths=(pathlib.PosixPath, pathlib.PurePosixPath), _path_classes=path_classes,
        _OSError=OSError, _PermissionError=PermissionError,
        _func_attrs=frozenset({"__code__"}), _devices=frozenset(devices),
        _write_flags=posix.O_WRONLY | posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC
        | posix.O_APPEND,
    ):
        if event in _deny or event[:7] == "ctypes.":
            raise _PermissionError(f"sandbox: {event} is not allowed")
        if event == "import":
            name = args[0]
            if _type(name) is _str and name.rpartition(".")[2] in _modules:
                raise _PermissionError(f"sandbox: import of {name} is not allowed")
            filename = args[1]
            if _type(filename) is _str:
                stem = filename.rpartition("/")[2].partition(".")[0]
                if stem in _modules:
                    raise _PermissionError(f"sandbox: import of {name} is not allowed")
            return
        if event == "object.__setattr__":
            if args[1] in _func_attrs or args[0] in _path_classes:
                raise _PermissionError(f"sandbox: setting {args[1]} is not allowed")
            return
        if event == "os.kill":
            if _allow_sub or args[0] == _getpid():
                return
            raise _PermissionError("sandbox: killing other processes is not allowed")
        if event == "open":
            if _type(args[0]) is _int:
                return  # an already open descriptor
            if _type(args[2]) is not _int:
                raise _PermissionError("sandbox: open with unknown flags is not allowed")
            todo = [(args[0], -1, (args[2] & _write_flags) != 0, True)]
        elif event in _read_events:
            raw = args[_read_events[event]]
            todo = [("." if raw is None else raw, -1, False, False)]
        elif event in _path_names:
            if event == "sqlite3.connect":
                db = args[0]
                if db in (":memory:", "", b":memory:", b""):
                    return
                if (_type(db) is _str or _type(db) is _bytes) and db[:5] in ("file:", b"file:"):
                    raise _PermissionError("sandbox: sqlite3 URIs are not allowed")
            todo = []
            for ev, spec in _path_events:
                if ev == event:
                    for i, d in spec:
                        todo.append((args[i], args[d] if d >= 0 else -1, True, False))
            if event == "os.symlink":
                todo.append(None)  # placeholder: the link target, filled in below
        else:
            return
        k = 0
        while k < _len(todo):
            raw, dir_fd, write, is_open = todo[k]
            k += 1
            # 1. the path as the kernel will see it, as an exact str
            t = _type(raw)
            if t is _str:
                path = raw
            elif t is _bytes:
                path = raw.decode("utf-8", "surrogateescape")
            elif t is _int:
                try:
                    path = _readlink("/proc/self/fd/" + _str(raw))
                except _OSError:
                    raise _PermissionError(f"sandbox: {event} on fd {raw} is not allowed") from None
            elif _isinstance(raw, _str):
                path = "".join([raw])
            elif _isinstance(raw, _bytes):
                path = b"".join([raw]).decode("utf-8", "surrogateescape")
            elif t in _paths:
                path = _fspath(raw)
            else:
                raise _PermissionError(f"sandbox: {event} with a {t.__name__} path is not allowed")
            # 2. make it absolute
            if path[:1] != "/":
                if is_open and ".." in path.split("/"):
                    raise _PermissionError(f"sandbox: open of {path!r} is not allowed")
                if _type(dir_fd) is _int and dir_fd >= 0:
                    try:
                        base = _readlink("/proc/self/fd/" + _str(dir_fd))
                    except _OSError:
                        raise _PermissionError(f"sandbox: {event} with dir_fd is not allowed") from None
                elif _type(dir_fd) is _str:
                    base = dir_fd  # directory of a symlink being created
                else:
                    base = _getcwd()
                path = base + "/" + path
            # 3. resolve symlinks like os.path.realpath, with captured functions only
            pending = [p for p in _reversed(path.split("/")) if p]
            resolved = []
            hops = 0
            while pending:
                name = pending.pop()
                if name == ".":
                    continue
                if name == "..":
                    if resolved:
                        resolved.pop()
                    continue
                candidate = "/" + "/".join([*resolved, name])
                try:
                    mode = _lstat(candidate).st_mode
                except _OSError:
                    resolved.append(name)
                    continue
                if mode & 0o170000 == 0o120000:
                    hops += 1
                    if hops > 40:
                        raise _PermissionError(f"sandbox: too many symlinks in {path!r}")
                    target = _readlink(candidate)
                    if target[:1] == "/":
                        resolved = []
                    pending.extend(p for p in _reversed(target.split("/")) if p)
                else:
                    resolved.append(name)
            real = "/" + "/".join(resolved)
            inside = real == _work or real[: _len(_work) + 1] == _work + "/"
            if is_open:
                try:
                    kind = _stat(real).st_mode & 0o170000
                except _OSError:
                    kind = 0
                if (kind == 0o020000 or kind == 0o060000) and real not in _devices:
                    raise _PermissionError(f"sandbox: opening device {path!r} is not allowed")
                if not inside and kind == 0o040000:
                    raise _PermissionError(
                        f"sandbox: opening directory {path!r} outside the working "
                        "directory is not allowed"
                    )
            if not inside and write and not (is_open and real in _devices):
                raise _PermissionError(
                    f"sandbox: {event} of {path!r} outside the working directory "
                    "is not allowed"
                )
            if not inside and not write and real not in _devices:
                for root in _readable:
                    if real == root or real[: _len(root) + 1] == root + "/":
                        break
                else:
                    raise _PermissionError(
                        f"sandbox: reading {path!r} is not allowed (only the working "
                        "directory and the Python installation are readable)"
                    )
            if k < _len(todo) and todo[k] is None:
                # os.symlink: its target, relative to the link's directory, must be inside
                todo[k] = (args[0], real.rpartition("/")[0] or "/", True, False)

    sys.addaudithook(hook)


def _main():
    import builtins
    import os

    work, program = sys.argv[1], sys.argv[2]
    allow_net, allow_sub = sys.argv[3] == "1", sys.argv[4] == "1"
    with open(program, "rb") as fh:
        source = fh.read()
    module = type(sys)("__main__")
    module.__file__ = program
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    sys.argv[:] = [program]
    # Readable besides the working directory: the interpreter's own installation (the
    # standard library it imports from) and the time-zone data; nothing else.
    readable = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    readable |= {os.path.realpath(p) for p in sys.path if p}
    readable |= {"/usr/share/zoneinfo", "/etc/localtime", os.path.realpath("/etc/localtime")}
    _arm(work, allow_net, allow_sub, sorted(readable))
    exec(compile(source, program, "exec", dont_inherit=True), module.__dict__)


_main()
"""


# --------------------------------------------------------------------------------------
# Capabilities and per-run plan
# --------------------------------------------------------------------------------------

_LIBC: Any = None
_CAPS: dict | None = None
_CAPS_LOCK = threading.Lock()


def _libc() -> Any:
    """The C library through ctypes (for ``unshare`` and ``mount``), or None."""
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.unshare.argtypes = [ctypes.c_int]
            lib.unshare.restype = ctypes.c_int
            lib.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
            lib.mount.restype = ctypes.c_int
            _LIBC = lib
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


@dataclass(frozen=True)
class _Plan:
    """What the child does between fork and exec (all paths absolute)."""

    unshare_flags: int = 0
    drop: bool = False
    cover: str | None = None  # directory hidden behind a tmpfs
    prefix: str | None = None  # interpreter prefix bind-mounted back inside it
    fs_view: bool = False  # chroot into a minimal read-only root (see _fs_view)


#: Top-level system folders shown read-only in the file-system view (as symlinks where the
#: host has symlinks, e.g. /lib -> usr/lib on merged-/usr systems).
_VIEW_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
#: Single files shown read-only: the dynamic loader's cache (library paths only).
_VIEW_FILES = ("/etc/ld.so.cache",)
#: The device files the code may open (as the audit guard allows).
_VIEW_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def _fs_view(base: str) -> list[tuple[str, str, str]]:
    """What the child's root holds: ``(kind, path, link target)`` with kind ``ro`` (a
    read-only bind of a host folder), ``file`` (a read-only bind of a host file), ``link``,
    ``dev`` (a device node) or ``base`` (the run's own folder, read-write for the sandbox uid
    where its permissions allow). Nothing else of the host exists there: no /etc (but the
    loader cache), /home, /root, /proc, /sys, /tmp, /var, /opt, /srv or the caller's sources."""
    view: list[tuple[str, str, str]] = []
    for top in _VIEW_SYSTEM:
        if os.path.islink(top):
            view.append(("link", top, os.readlink(top)))
        elif os.path.isdir(top):
            view.append(("ro", top, ""))
    shown = [p for kind, p, _ in view if kind == "ro"]
    prefix = os.path.realpath(sys.base_prefix)
    if not any(_within(prefix, top) for top in shown):
        view.append(("ro", prefix, ""))
    view += [("file", f, "") for f in _VIEW_FILES if os.path.isfile(f)]
    view += [("dev", d, "") for d in _VIEW_DEVICES if os.path.exists(d)]
    view.append(("base", base, ""))
    return view


def _real_executable() -> str:
    return os.path.realpath(sys.executable)


def _closed_ancestor(prefix: str) -> str | None:
    """Topmost proper ancestor of ``prefix`` that other users cannot enter, or None."""
    parts = prefix.strip("/").split("/")
    for i in range(1, len(parts)):
        path = "/" + "/".join(parts[:i])
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return None
        if not mode & 0o001:
            return path
    return None


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _view_steps(stage: str, base: str) -> list[tuple]:
    """The steps that turn ``stage`` into the child's root (run after ``unshare`` of the
    mount namespace, before ``chroot``): a small tmpfs, then the binds and links of
    :func:`_fs_view` at the same paths inside it."""
    ro = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID
    steps: list[tuple] = [
        ("mount", None, b"/", None, _MS_REC | _MS_PRIVATE, None),
        ("mount", b"tmpfs", stage.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=1m"),
    ]
    for kind, path, target in _fs_view(base):
        inside = stage + path
        parent = os.path.dirname(inside)
        if kind == "link":
            steps += [("mkdirs", stage, parent), ("symlink", target, inside)]
        elif kind == "ro":
            steps += [
                ("mkdirs", stage, inside),
                ("mount", path.encode(), inside.encode(), None, _MS_BIND | _MS_REC, None),
                ("mount", None, inside.encode(), None, ro | _MS_NODEV, None),
            ]
        elif kind in ("file", "dev"):
            steps += [
                ("mkdirs", stage, parent),
                ("touch", inside),
                ("mount", path.encode(), inside.encode(), None, _MS_BIND, None),
            ]
            if kind == "file":
                steps.append(("mount", None, inside.encode(), None, ro | _MS_NODEV, None))
        else:  # the run's folder; not recursive, so the new root is not seen inside itself
            steps += [
                ("mkdirs", stage, inside),
                ("mount", path.encode(), inside.encode(), None, _MS_BIND, None),
            ]
    steps.append(("chroot", stage))
    return steps


def _make_preexec(
    plan: _Plan,
    rlimits: Sequence[tuple[int, int, int]],
    stage: str | None,
    *,
    base: str | None = None,
    cwd: str | None = None,
) -> Callable[[], None]:
    """Build the function the child runs after fork and before exec.

    Order matters: namespaces and mounts need root, so they come first; then the uid is
    dropped; the rlimits come last so that nothing in between runs into RLIMIT_AS (the
    forked child is still a copy of the possibly large caller).
    """
    libc = _libc()
    flags = plan.unshare_flags
    mounts: list[tuple[bytes | None, bytes, bytes | None, int, bytes | None]] = []
    mkdirs: list[str] = []
    view = _view_steps(stage, base) if plan.fs_view and stage and base else []
    if plan.cover and plan.prefix and stage and not view:
        cover, prefix, stage_b = plan.cover.encode(), plan.prefix.encode(), stage.encode()
        rest = plan.prefix[len(plan.cover) :].strip("/").split("/")
        mkdirs = [plan.cover + "/" + "/".join(rest[: i + 1]) for i in range(len(rest))]
        mounts = [
            (None, b"/", None, _MS_REC | _MS_PRIVATE, None),
            (prefix, stage_b, None, _MS_BIND | _MS_REC, None),
            (b"tmpfs", cover, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=1m"),
        ]
        after = [
            (stage_b, prefix, None, _MS_MOVE, None),
            (
                None,
                prefix,
                None,
                _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                None,
            ),
        ]
    else:
        after = []

    def fail(what: str) -> None:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")

    def mkdirs_under(root: str, path: str) -> None:
        # Each component made 0755 explicitly: the child's umask (0o077) must not close them.
        parts = path[len(root) :].strip("/").split("/")
        current = root
        for part in parts:
            if not part:
                continue
            current = current + "/" + part
            if not os.path.lexists(current):
                os.mkdir(current)
                os.chmod(current, 0o755)

    def build_view() -> None:
        for step in view:
            if step[0] == "mount":
                _, src, dst, fstype, mflags, data = step
                if libc.mount(src, dst, fstype, mflags, data) != 0:
                    fail(f"mount {dst!r}")
            elif step[0] == "mkdirs":
                mkdirs_under(step[1], step[2])
            elif step[0] == "symlink":
                os.symlink(step[1], step[2])
            elif step[0] == "touch":
                os.close(os.open(step[1], os.O_CREAT | os.O_WRONLY, 0o644))
            else:  # chroot, then back into the working folder (same path inside)
                os.chroot(step[1])
                os.chdir(cwd or "/")

    def preexec() -> None:
        if flags and (libc is None or libc.unshare(flags) != 0):
            fail("unshare")
        if view:
            build_view()
        for src, dst, fstype, mflags, data in mounts:
            if libc.mount(src, dst, fstype, mflags, data) != 0:
                fail(f"mount {dst!r}")
        for path in mkdirs:
            os.mkdir(path)
            os.chmod(path, 0o755)
        for src, dst, fstype, mflags, data in after:
            if libc.mount(src, dst, fstype, mflags, data) != 0:
                fail(f"mount {dst!r}")
        if plan.drop:
            os.setgroups([])
            os.setgid(SANDBOX_GID)
            os.setuid(SANDBOX_UID)
        for res, soft, hard in rlimits:
            resource.setrlimit(res, (soft, hard))

    return preexec


def _spawn_probe(plan: _Plan, code: str) -> tuple[bool, str]:
    """Run ``code`` from a script file under ``plan``, as a real run would.

    The script lies in a fresh directory under the temporary directory, like a run's
    bootstrap, so the probe also checks that the sandbox uid can reach it.

    Returns
    -------
    tuple of (bool, str)
        Whether it exited with code 0, and its stdout (or the error when it did not).
    """
    base = tempfile.mkdtemp(prefix="smcdecode-probe-")
    stage = os.path.join(base, "stage")
    script = os.path.join(base, "probe.py")
    try:
        os.chmod(base, 0o755)
        os.mkdir(stage)
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(code)
        os.chmod(script, 0o644)
        proc = subprocess.run(
            [_real_executable(), "-I", "-S", "-B", script],
            cwd=base,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            preexec_fn=_make_preexec(plan, [], stage, base=base, cwd=base),
            start_new_session=True,
        )
        out = proc.stdout.decode(errors="replace").strip()
        err = proc.stderr.decode(errors="replace").strip()
        return proc.returncode == 0, out if proc.returncode == 0 else (err or out)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(script)
        for path in (stage, base):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _probe() -> dict:
    caps: dict[str, Any] = {
        "platform": sys.platform,
        "supported": False,
        "is_root": False,
        "netns": False,
        "netns_needs_userns": False,
        "uid_drop": False,
        "sandbox_uid": None,
        "hidden_dir": None,
        "fs_view": False,
        "interpreter": _real_executable(),
        "unshare_binary": shutil.which("unshare"),
        "cgroup_pids": False,
        "notes": [],
    }
    notes: list[str] = caps["notes"]
    if not sys.platform.startswith("linux") or resource is None:
        notes.append("sandbox needs Linux (setrlimit, namespaces, /proc)")
        return caps
    caps["supported"] = True
    is_root = os.geteuid() == 0
    caps["is_root"] = is_root
    caps["sandbox_uid"] = SANDBOX_UID if is_root else os.geteuid()
    if _libc() is None:
        notes.append("no C library through ctypes: no namespaces")
    else:
        flags = _CLONE_NEWNET if is_root else _CLONE_NEWUSER | _CLONE_NEWNET
        ok, msg = _spawn_probe(_Plan(unshare_flags=flags), "pass")
        caps["netns"] = ok
        caps["netns_needs_userns"] = ok and not is_root
        if not ok:
            notes.append(f"no network namespace ({msg}); the audit guard alone denies sockets")
    caps["fs_view"] = False
    if _libc() is not None:
        # The minimal root (layer 3b): the uid as it will run, /etc/passwd and /proc absent.
        view_code = (
            "import os; print(os.getuid(), os.path.exists('/etc/passwd'), "
            "os.path.exists('/proc/self'))"
        )
        flags = _CLONE_NEWNS if is_root else _CLONE_NEWUSER | _CLONE_NEWNS
        plan = _Plan(unshare_flags=flags, drop=is_root, fs_view=True)
        ok, msg = _spawn_probe(plan, view_code)
        expected_uid = SANDBOX_UID if is_root else None
        parts = msg.split()
        if (
            ok
            and parts[1:] == ["False", "False"]
            and (expected_uid is None or parts[0] == str(expected_uid))
        ):
            caps["fs_view"] = True
        else:
            notes.append(
                f"no file-system view ({msg}); reads outside the working folder are stopped "
                "by the audit guard only"
            )
    if is_root:
        uid_code = "import os; print(os.getuid())"
        ok, msg = _spawn_probe(_Plan(drop=True), uid_code)
        if ok and msg == str(SANDBOX_UID):
            caps["uid_drop"] = True
        else:
            prefix = os.path.realpath(sys.base_prefix)
            cover = _closed_ancestor(prefix)
            tmp = os.path.realpath(tempfile.gettempdir())
            usable = (
                cover is not None
                and _libc() is not None
                and _within(_real_executable(), prefix)
                and not _within(tmp, cover)
            )
            if usable:
                plan = _Plan(unshare_flags=_CLONE_NEWNS, drop=True, cover=cover, prefix=prefix)
                ok2, msg2 = _spawn_probe(plan, uid_code)
                if ok2 and msg2 == str(SANDBOX_UID):
                    caps["uid_drop"] = True
                    caps["hidden_dir"] = cover
                else:
                    msg = f"{msg}; with {cover} hidden: {msg2}"
            if not caps["uid_drop"]:
                caps["sandbox_uid"] = 0
                notes.append(
                    f"cannot run the interpreter as uid {SANDBOX_UID} ({msg}); the child "
                    "stays root, RLIMIT_NPROC does not bind and only the audit guard "
                    "stops fork/exec"
                )
    notes.append("cgroup pids limit not used (rlimits + uid drop instead)")
    return caps


def sandbox_capabilities() -> dict:
    """Probe (once, then cached) which isolation layers this machine supports.

    The probe starts a few trivial interpreters under each layer and keeps what worked.

    Returns
    -------
    dict
        ``supported`` (Linux with rlimits), ``is_root``, ``netns`` (a new network
        namespace can be made; ``netns_needs_userns`` when that takes a user namespace,
        as for non-root callers), ``uid_drop`` (root only: the interpreter runs as
        :data:`SANDBOX_UID`), ``sandbox_uid`` (uid the child runs as), ``hidden_dir``
        (directory covered by a tmpfs to make the interpreter reachable, or None),
        ``interpreter``, ``unshare_binary`` (path of ``unshare(1)``, informational),
        ``cgroup_pids`` (always False: not used) and ``notes`` (why a layer is missing).
        A copy: changing it does not change the cache.
    """
    global _CAPS
    with _CAPS_LOCK:
        if _CAPS is None:
            _CAPS = _probe()
        caps = dict(_CAPS)
        caps["notes"] = list(_CAPS["notes"])
        return caps


# --------------------------------------------------------------------------------------
# /proc helpers: task counting and tree kill
# --------------------------------------------------------------------------------------


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _count_tasks(uid: int) -> int:
    """Tasks (threads included) whose real uid is ``uid``, as RLIMIT_NPROC counts them."""
    total = 0
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                text = fh.read()
        except OSError:
            continue
        real_uid = threads = None
        for line in text.splitlines():
            if line.startswith(b"Uid:"):
                real_uid = int(line.split()[1])
            elif line.startswith(b"Threads:"):
                threads = int(line.split()[1])
        if real_uid == uid:
            total += threads or 1
    return total


def _stat_fields(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, session) of ``pid`` or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data.rpartition(b")")[2].split()
    try:
        return fields[0].decode(), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def _leftovers(sid: int, uid: int, marker: bytes) -> list[int]:
    """Live processes of the run: in its session or group, or carrying its marker."""
    found = []
    me = os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        info = _stat_fields(pid)
        if info is None or info[0] in ("Z", "X"):
            continue
        if info[1] == sid or info[2] == sid:
            found.append(pid)
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return found


def _kill_tree(sid: int, uid: int, marker: bytes, *, patience_s: float = 5.0) -> bool:
    """SIGKILL everything left of a run until nothing is left; True when clean."""
    deadline = time.monotonic() + patience_s
    while True:
        with contextlib.suppress(OSError):
            os.killpg(sid, signal.SIGKILL)
        left = _leftovers(sid, uid, marker)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not left:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def _wait_exit(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited, without reaping it; False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
            return bool(ready)
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _read_output(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(4 * OUTPUT_LIMIT + 4)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if len(text) > OUTPUT_LIMIT or size > len(data):
        cut = text[:OUTPUT_LIMIT]
        return cut + f"\n[... output truncated: {size} bytes in all]"
    return text


def _remove_tree(path: str) -> None:
    def onerror(func: Any, p: str, exc_info: Any) -> None:
        # a non-root sandbox may leave read-only dirs behind: open them up and retry once
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)

    shutil.rmtree(path, onerror=onerror)


def _error(message: str, start: float, isolation: dict) -> RunResult:
    return RunResult("error", None, "", message, time.monotonic() - start, isolation)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def run_python(code: str, *, limits: SandboxLimits | None = None) -> RunResult:
    """Run Python source in a fresh sandboxed interpreter and report what happened.

    Parameters
    ----------
    code : str
        The program, run as ``__main__`` from a file in a fresh working directory.
    limits : SandboxLimits, optional
        Limits and permissions; ``SandboxLimits()`` when omitted.

    Returns
    -------
    RunResult
        Status, exit code, captured output (cut to :data:`OUTPUT_LIMIT` characters each),
        duration and the isolation layers in force. Never raises for anything the code
        does; an unusable sandbox gives status ``"error"``.

    Raises
    ------
    labcore.errors.LabcoreError
        If ``code`` is not a str or ``limits`` is not a :class:`SandboxLimits`.

    Notes
    -----
    Thread-safe; :func:`check_many` calls it from several threads.
    """
    if limits is None:
        limits = SandboxLimits()
    if not isinstance(code, str):
        raise LabcoreError(f"code must be a str, got {type(code).__name__}")
    if not isinstance(limits, SandboxLimits):
        raise LabcoreError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
    start = time.monotonic()
    caps = sandbox_capabilities()
    if not caps["supported"]:
        return _error("sandbox unavailable: " + "; ".join(caps["notes"]), start, {})

    netns = caps["netns"] and not limits.network
    flags = 0
    if netns:
        flags |= _CLONE_NEWNET if caps["is_root"] else _CLONE_NEWUSER | _CLONE_NEWNET
    fs_view = caps.get("fs_view", False)
    # The view holds the interpreter at its path, so the uid drop works with it even where
    # the interpreter lies under a folder closed to the sandbox uid.
    drop = caps["uid_drop"] or (fs_view and caps["is_root"])
    cover = caps["hidden_dir"] if drop and not fs_view else None
    if cover or fs_view:
        flags |= _CLONE_NEWNS
        if not caps["is_root"]:
            flags |= _CLONE_NEWUSER
    plan = _Plan(
        unshare_flags=flags,
        drop=drop,
        cover=cover,
        prefix=os.path.realpath(sys.base_prefix) if cover else None,
        fs_view=fs_view,
    )
    uid = SANDBOX_UID if drop else os.geteuid()
    nproc_binds = drop or not caps["is_root"]
    nproc_limit = _count_tasks(uid) + limits.max_processes
    mib = 1024 * 1024
    rlimits = [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, limits.cpu_s, limits.cpu_s + 1),
        (resource.RLIMIT_AS, limits.memory_mb * mib, limits.memory_mb * mib),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mib, limits.file_size_mb * mib),
        (resource.RLIMIT_NPROC, nproc_limit, nproc_limit),
    ]
    isolation = {
        "netns": netns,
        "userns": bool(flags & _CLONE_NEWUSER),
        "uid": uid,
        "uid_drop": drop,
        "nproc_binds": nproc_binds,
        "nproc_limit": nproc_limit,
        "hidden_dir": cover,
        "fs_view": fs_view,
        "audit_guard": True,
        "network": limits.network,
        "subprocess": limits.allow_subprocess,
        "cpu_s": limits.cpu_s,
        "memory_mb": limits.memory_mb,
        "file_size_mb": limits.file_size_mb,
        "timeout_s": limits.timeout_s,
    }

    try:
        base = tempfile.mkdtemp(prefix="smcdecode-sandbox-")
    except OSError as exc:
        return _error(f"sandbox could not create its directory: {exc}", start, isolation)
    work = os.path.join(base, "work")
    stage = os.path.join(base, "stage")
    program = os.path.join(base, "program.py")
    bootstrap = os.path.join(base, "bootstrap.py")
    out_path, err_path = os.path.join(base, "stdout"), os.path.join(base, "stderr")
    marker = secrets.token_hex(16)
    proc = None
    try:
        try:
            os.chmod(base, 0o755)
            os.mkdir(work, 0o700)
            os.mkdir(stage, 0o755)
            if drop:
                os.chown(work, SANDBOX_UID, SANDBOX_GID)
            for path, text in ((program, code), (bootstrap, _BOOTSTRAP)):
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.chmod(path, 0o644)
        except (OSError, UnicodeError) as exc:
            return _error(f"sandbox could not prepare its directory: {exc}", start, isolation)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": work,
            "TMPDIR": work,
            "PYTHONDONTWRITEBYTECODE": "1",
            # ignored by the -I interpreter itself, kept for anything that reads it
            "PYTHONHASHSEED": "0",
            _MARKER_VAR: marker,
        }
        argv = [
            _real_executable(),
            "-I",
            "-S",
            "-B",
            bootstrap,
            work,
            program,
            "1" if limits.network else "0",
            "1" if limits.allow_subprocess else "0",
        ]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=work,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    close_fds=True,
                    start_new_session=True,
                    preexec_fn=_make_preexec(plan, rlimits, stage, base=base, cwd=work),
                    umask=0o077,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return _error(f"sandbox could not start: {exc}", start, isolation)
        exited = _wait_exit(proc.pid, limits.timeout_s)
        # The child is not reaped yet, so its pid still names the session: kill the tree.
        clean = _kill_tree(proc.pid, uid, f"{_MARKER_VAR}={marker}".encode())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        rc = proc.returncode
        cpu_used = usage.ru_utime + usage.ru_stime
        cpu_killed = rc == -signal.SIGXCPU or (rc == -signal.SIGKILL and cpu_used >= limits.cpu_s)
        if not exited or cpu_killed:
            verdict = "timeout"
        elif rc == 0:
            verdict = "passed"
        else:
            verdict = "failed"
        isolation["tree_killed"] = clean
        stderr = _read_output(err_path)
        if not exited:
            stderr += f"\n[sandbox: wall-clock timeout after {limits.timeout_s:g} s]"
        elif verdict == "timeout":
            stderr += f"\n[sandbox: CPU time limit of {limits.cpu_s} s exceeded]"
        return RunResult(
            verdict,
            rc,
            _read_output(out_path),
            stderr,
            time.monotonic() - start,
            isolation,
        )
    finally:
        if proc is not None and proc.returncode is None:  # pragma: no cover - defensive
            _kill_tree(proc.pid, uid, f"{_MARKER_VAR}={marker}".encode())
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                proc.wait(timeout=5)
        _remove_tree(work)
        for path in (program, bootstrap, out_path, err_path):
            with contextlib.suppress(OSError):
                os.unlink(path)
        # rmdir, never rmtree: should the mount point still hold the interpreter
        # (it cannot outside the child's mount namespace) nothing below it is touched.
        for path in (stage, base):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def check_program(
    program: str, test: str, entry_point: str, *, limits: SandboxLimits | None = None
) -> RunResult:
    """Check one HumanEval-style solution in the sandbox.

    The script run is ``program + "\\n\\n" + test + f"\\n\\ncheck({entry_point})\\n"``,
    the convention of the HumanEval harness; it passes iff it exits with code 0.

    Parameters
    ----------
    program : str
        Prompt plus completion: the function under test.
    test : str
        The problem's test code, defining ``check(candidate)``.
    entry_point : str
        Name of the function to pass to ``check``.
    limits : SandboxLimits, optional
        Limits for the run; ``SandboxLimits()`` when omitted.

    Returns
    -------
    RunResult
        See :func:`run_python`.

    Raises
    ------
    labcore.errors.LabcoreError
        If an argument is not a str or ``entry_point`` is not an identifier.
    """
    for name, value in (("program", program), ("test", test), ("entry_point", entry_point)):
        if not isinstance(value, str):
            raise LabcoreError(f"{name} must be a str, got {type(value).__name__}")
    if not entry_point.isidentifier():
        raise LabcoreError(f"entry_point must be a Python identifier, got {entry_point!r}")
    script = program + "\n\n" + test + f"\n\ncheck({entry_point})\n"
    return run_python(script, limits=limits)


def check_many(
    items: Sequence[tuple[str, str, str]],
    *,
    limits: SandboxLimits | None = None,
    workers: int = 2,
) -> list[RunResult]:
    """Check several HumanEval-style solutions, a few sandboxes at a time.

    Parameters
    ----------
    items : sequence of (program, test, entry_point)
        Arguments of :func:`check_program`, one tuple per solution.
    limits : SandboxLimits, optional
        Limits for every run; ``SandboxLimits()`` when omitted.
    workers : int
        Sandboxes running at once (threads, each waiting on its own child process).

    Returns
    -------
    list of RunResult
        One per item, in the order of ``items``.

    Raises
    ------
    labcore.errors.LabcoreError
        If ``workers`` is not a positive integer or an item is malformed.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise LabcoreError(f"workers must be a positive integer, got {workers!r}")
    items = list(items)
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 3:
            raise LabcoreError(f"items[{i}] must be a (program, test, entry_point) tuple")
    if not items:
        return []
    sandbox_capabilities()  # probe once, before the threads start

    def one(item: tuple[str, str, str]) -> RunResult:
        return check_program(*item, limits=limits)

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(one, items))
