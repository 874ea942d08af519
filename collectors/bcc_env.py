"""Make this machine ready for bcc before any program is compiled.

Three things have to be true before bcc can load a program here:

* the process is root, or holds CAP_BPF and CAP_PERFMON (kernel >= 5.8);
* tracefs (and debugfs, which older tools look under) is mounted: some
  distributions and VMs boot without them, and bcc resolves tracepoints and
  reports attach errors through them;
* bcc can find kernel headers.  When the running kernel has no header package
  the set-up script merges an older generic tree and writes its path into
  ``/var/cache/webprof/kernel-source``; bcc reads ``BCC_KERNEL_SOURCE``.

:func:`prepare` does all of it and is idempotent.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

KERNEL_SOURCE_FILE = "/var/cache/webprof/kernel-source"
PROC_MOUNTS = "/proc/mounts"
MOUNTS = (("debugfs", "/sys/kernel/debug"), ("tracefs", "/sys/kernel/tracing"))

# Bit numbers in the CapEff mask of /proc/self/status (linux/capability.h).
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


class BpfUnavailable(Exception):
    """eBPF cannot be used by this process; ``str()`` says what is missing and how to fix it."""


def effective_caps(status_path: str = "/proc/self/status") -> int:
    """The effective capability mask of this process (0 when unreadable)."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def check_privileges(euid: int | None = None, caps: int | None = None) -> str | None:
    """Return what is missing for loading eBPF programs, or None when nothing is.

    Root (euid 0) is enough.  Otherwise the kernel wants CAP_BPF to load
    programs and create maps, and CAP_PERFMON to attach to perf events and
    read kernel stacks; CAP_SYS_ADMIN covers both on any kernel.
    """
    euid = os.geteuid() if euid is None else euid
    caps = effective_caps() if caps is None else caps
    if euid == 0 or caps & (1 << CAP_SYS_ADMIN):
        return None
    missing = [
        name
        for name, bit in (("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON))
        if not caps & (1 << bit)
    ]
    if not missing:
        return None
    return (
        f"not root (uid {euid}) and missing {' and '.join(missing)}: run as root "
        "(sudo webprof ...) or grant the capabilities "
        "(sudo setcap cap_bpf,cap_perfmon+ep on the Python interpreter)"
    )


def mounted_types(mounts_path: str = PROC_MOUNTS) -> dict[str, str]:
    """Mount point -> filesystem type, from /proc/mounts."""
    result: dict[str, str] = {}
    try:
        with open(mounts_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    result[parts[1]] = parts[2]
    except OSError:
        pass
    return result


def ensure_mounted(fstype: str, target: str) -> None:
    """Mount ``fstype`` at ``target`` unless something of that type is already there."""
    if mounted_types().get(target) == fstype:
        return
    try:
        proc = subprocess.run(
            ["mount", "-t", fstype, "nodev", target],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BpfUnavailable(f"cannot mount {fstype} at {target}: {exc}") from None
    if proc.returncode != 0 and mounted_types().get(target) != fstype:
        detail = proc.stderr.strip() or f"exit code {proc.returncode}"
        raise BpfUnavailable(
            f"{fstype} is not mounted at {target} and mounting it failed ({detail}); "
            f"run as root: mount -t {fstype} nodev {target}"
        )


def configured_kernel_source(path: str = KERNEL_SOURCE_FILE) -> str | None:
    """The header tree recorded by the set-up script, or None (use the kernel's own)."""
    try:
        with open(path) as f:
            text = f.readline().strip()
    except OSError:
        return None
    return text or None


def prepare() -> None:
    """Check privileges, mount debugfs/tracefs and point bcc at kernel headers.

    Raises :class:`BpfUnavailable` with a how-to-fix message when eBPF cannot
    be used.  Safe to call more than once.
    """
    problem = check_privileges()
    if problem:
        raise BpfUnavailable(problem)
    for fstype, target in MOUNTS:
        ensure_mounted(fstype, target)
    remove_dead_events_once()
    source = configured_kernel_source()
    if source and not os.environ.get("BCC_KERNEL_SOURCE"):
        os.environ["BCC_KERNEL_SOURCE"] = source


# Collectors keep two sets of maps and switch the kernel between them at each
# drain.  A program that read the old set index just before the switch may
# still be writing to that set; tracepoint and perf-event programs run for
# microseconds, so 2 ms lets them finish before the old set is read (the same
# idea as an RCU grace period).
FLIP_GRACE_S = 0.002


# bcc 0.26 crashes the process (SIGSEGV in its LLVM front end) when two threads
# compile at once, and traces compile in worker threads while the fleet may be
# reconfiguring.  Reentrant: callers that compile and attach as one step hold it
# around both, and load() takes it again inside.
COMPILE_LOCK = threading.RLock()


def load(source: Path, cflags: list[str]) -> Any:
    """:func:`prepare`, then compile ``source`` with bcc (tracepoint programs
    attach themselves on load).  Compile or attach errors become
    :class:`BpfUnavailable` with a pointer to ``webprof doctor``."""
    prepare()
    from bcc import BPF

    try:
        # -I: programs include shared map-free helpers (bpf/log2.h).
        with COMPILE_LOCK:
            return BPF(src_file=str(source).encode(), cflags=[f"-I{source.parent}", *cflags])
    except Exception as exc:  # bcc raises plain Exception on compile/attach errors
        raise BpfUnavailable(
            f"bcc could not load {source.name} ({exc}); run `webprof doctor`"
        ) from None


def flip_set(bpf: Any, active: int) -> int:
    """Point the programs at the other map set; return it once writers to
    ``active`` have finished."""
    control = bpf[b"control"]
    control[control.Key(0)] = control.Leaf(1 - active)
    time.sleep(FLIP_GRACE_S)
    return 1 - active


# bcc 0.26 retries a uprobe the kernel refused through tracefs and leaves the
# event it defined there; callers remove what a failed attach added.
UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"  # mounted by prepare()


KPROBE_EVENTS = "/sys/kernel/tracing/kprobe_events"
# bcc names the events it defines after the process: "<probe>_bcc_<pid>".
BCC_EVENT_PID = re.compile(r"_bcc_(\d+)$")


def tracefs_events(path: str) -> set[str]:
    """The events defined in a tracefs ``*_events`` file, as "group/name"
    (lines read "p:uprobes/<name>_bcc_<pid> <path>:<offset>")."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    return {line.split(maxsplit=1)[0].partition(":")[2] for line in lines if line.strip()}


def bcc_uprobe_events(path: str = UPROBE_EVENTS) -> set[str]:
    """The tracefs uprobe events bcc defined for this process."""
    suffix = f"_bcc_{os.getpid()}"
    return {name for name in tracefs_events(path) if name.endswith(suffix)}


def dead_bcc_events(path: str) -> set[str]:
    """Events bcc defined for processes that no longer run: a collector killed
    with SIGKILL (or one that crashed) never removed its tracefs fallbacks,
    and the kernel keeps them until someone does."""
    dead = set()
    for name in tracefs_events(path):
        match = BCC_EVENT_PID.search(name)
        if match and int(match.group(1)) != os.getpid() and \
                not os.path.exists(f"/proc/{match.group(1)}"):
            dead.add(name)
    return dead


def remove_dead_events() -> set[str]:
    """Remove dead processes' bcc events from uprobe_events and kprobe_events.
    One still in use (a process in another pid namespace) is refused by the
    kernel (EBUSY) and stays.  Returns what was asked to go."""
    removed = set()
    for path in (UPROBE_EVENTS, KPROBE_EVENTS):
        names = dead_bcc_events(path)
        remove_uprobe_events(names, path)
        removed |= names
    return removed


_dead_events_removed = False


def remove_dead_events_once() -> None:
    global _dead_events_removed
    if not _dead_events_removed:
        _dead_events_removed = True
        remove_dead_events()


def remove_uprobe_events(names: set[str], path: str = UPROBE_EVENTS) -> None:
    """Delete tracefs events ("-:group/name") from uprobe_events (or
    kprobe_events); errors are ignored (gone already, or busy).

    O_APPEND without O_TRUNC: truncating the file would delete every
    such event on the machine, and Python's "a" mode seeks, which tracefs
    refuses (EINVAL)."""
    for name in sorted(names):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError:
            return
        try:
            os.write(fd, f"-:{name}\n".encode())
        except OSError:
            pass
        finally:
            os.close(fd)
