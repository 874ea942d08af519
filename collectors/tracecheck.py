"""Host facts for targeted traces, and the answers to ``collector.query``.

The server checks a trace request's shape (webprof.core.tracespec); only
the collector can say whether it makes sense here: the pid exists, the
binary is a regular ELF file holding the symbol or USDT probe, the syscall,
device, tracepoint or cgroup exists.  :func:`check` runs both (the server
is trusted, not blindly) and returns what the loaders need (resolved path,
addresses, numbers), or raises SpecErrors with one message per field.
Nothing here builds C: every value found becomes a number or goes to one
of bcc's attach calls (collectors/traces.py).
"""

from __future__ import annotations

import os
import pwd
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from collectors import bcc_env, syscalls, usdt
from collectors.elf import ElfError, ElfSections, read_elf, resolve
from collectors.target import COMM_BYTES
from webprof.core.trace_messages import CollectorAnswer, CollectorQuery
from webprof.core.tracespec import MAX_PATH, Limits, SpecErrors, TraceSpec, parse_spec

TRACING = "/sys/kernel/tracing"
CGROUP_ROOT = "/sys/fs/cgroup"
SYS_BLOCK = "/sys/block"
MAX_PROCESSES = 2000
MAX_SYMBOLS = 200
MAX_TRACEPOINTS = 5000
_PREFIX = re.compile(r"[A-Za-z0-9_.:$@]{0,128}")  # with .fullmatch


@dataclass
class HostFacts:
    """What the checks found, in the form the loaders take."""

    binary: str | None = None  # the request's binary, resolved (collectors.elf.resolve)
    cgroup_id: int | None = None
    device: int | None = None  # the kernel's dev value, MAJOR << 20 | MINOR
    syscalls: list[int] = field(default_factory=list)
    usdt_addresses: list[int] = field(default_factory=list)


def check(data: object, limits: Limits) -> tuple[TraceSpec, HostFacts]:
    """parse_spec with this collector's limits, then the host facts."""
    spec = parse_spec(data, limits)
    facts, errors = HostFacts(), {}
    _check_target(spec, facts, errors)
    if spec.binary is not None:
        facts.binary = _check_binary(spec.binary, errors, "binary")
    if "binary" not in errors:
        {"funclat": _check_symbols, "usdt": _check_probe, "syscall": _check_syscalls,
         "biolat": _check_device, "tracepoint": _check_tracepoint}.get(
            spec.kind, lambda *_: None)(spec, facts, errors)
    if errors:
        raise SpecErrors(errors)
    return spec, facts


def _check_target(spec: TraceSpec, facts: HostFacts, errors: dict[str, str]) -> None:
    if spec.kind == "biolat" and spec.target in ("pid", "comm"):
        errors["target"] = ("block I/O latency cannot be filtered by process: requests are "
                            "issued by kernel workers and completed in interrupts")
    elif spec.target == "pid":
        problem = pid_problem(spec.pid)
        if problem:
            errors["pid"] = problem
    elif spec.target == "comm" and len(spec.comm.encode("utf-8")) >= COMM_BYTES:
        errors["comm"] = "the kernel keeps at most 15 bytes of a task name"
    elif spec.target == "cgroup":
        facts.cgroup_id = _cgroup_id(spec.cgroup, errors)


def pid_problem(pid: int) -> str | None:
    """Why ``pid`` cannot be traced (no such process, a thread), or None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return f"no process {pid} on this host"
    match = re.search(r"^Tgid:\s*(\d+)", status, re.MULTILINE)
    if match and int(match.group(1)) != pid:
        return f"{pid} is a thread of process {match.group(1)}: trace the process"
    return None


def _cgroup_id(path: str, errors: dict[str, str]) -> int | None:
    """A cgroup v2 directory's id: the inode number bpf_get_current_cgroup_id() returns."""
    real = os.path.realpath(path)
    roots = cgroup2_roots()
    if not roots:
        errors["cgroup"] = f"no cgroup v2 hierarchy is mounted under {CGROUP_ROOT}"
    elif not any(real == root or real.startswith(root + "/") for root in roots):
        errors["cgroup"] = f"must be a cgroup v2 directory under {' or '.join(roots)}"
    elif not os.path.isfile(os.path.join(real, "cgroup.procs")):
        errors["cgroup"] = f"no cgroup {real}"
    else:
        return os.stat(real).st_ino
    return None


def cgroup2_roots() -> list[str]:
    """Mount points of the cgroup v2 hierarchy under /sys/fs/cgroup: the root itself
    on unified systems, /sys/fs/cgroup/unified on hybrid (v1 + v2) ones.  The
    kernel's cgroup id (bpf_get_current_cgroup_id) is always a v2 id."""
    return sorted(point for point, kind in bcc_env.mounted_types().items()
                  if kind == "cgroup2" and (point == CGROUP_ROOT
                                            or point.startswith(CGROUP_ROOT + "/")))


def check_binary(path: str) -> str:
    """The resolved path of a regular 64-bit ELF file every user may read;
    ValueError says why not."""
    errors: dict[str, str] = {}
    real = _check_binary(path, errors, "binary")
    if errors:
        raise ValueError(errors["binary"])
    return real


def _check_binary(path: str, errors: dict[str, str], name: str) -> str | None:
    """Resolved here (never trusting the server's check of '..'), refused under
    /proc, /sys and /dev, and opened by collectors.elf, which reads only
    regular files without blocking.  A missing file and one that not every
    user may read get the same answer: a question does not reveal which."""
    try:
        real = resolve(path)
        read_elf(real, lambda elf: None)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        errors[name] = f"no file {path} readable by every user on this host"
        return None
    except OSError as exc:
        errors[name] = f"cannot read {path}: {exc.strerror}"
        return None
    except ElfError as exc:
        errors[name] = str(exc)[:300]
        return None
    return real


def _check_symbols(spec: TraceSpec, facts: HostFacts, errors: dict[str, str]) -> None:
    names = read_elf(facts.binary, ElfSections.function_names)
    missing = [s for s in spec.symbols if s not in names]
    if missing:
        errors["symbols"] = (f"{missing[0]!r} is not a function in {facts.binary} "
                             f"(its symbol tables list {len(names)} functions)")
    elif spec.target == "pid" and "pid" not in errors:
        _check_mapped(spec.pid, facts.binary, errors)


def _check_mapped(pid: int, binary: str, errors: dict[str, str]) -> None:
    """A pid-targeted uprobe only fires if the process maps the binary."""
    want = os.stat(binary)
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return
    for path in {line.split(maxsplit=5)[5] for line in maps.splitlines()
                 if len(line.split(maxsplit=5)) == 6}:
        for candidate in (path, f"/proc/{pid}/root{path}"):
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                return
    errors["binary"] = f"process {pid} does not map {binary}: its probes would never fire"


def _check_probe(spec: TraceSpec, facts: HostFacts, errors: dict[str, str]) -> None:
    found = usdt.probes(facts.binary)
    sites = [p for p in found if p.label == spec.probe]
    if not sites:
        have = sorted({p.label for p in found})
        listing = f"it has: {', '.join(have[:10])}" if have else "it declares no USDT probes"
        errors["probe"] = f"no probe {spec.probe} in {facts.binary}; {listing}"
    elif any(p.semaphore for p in sites):
        errors["probe"] = usdt.SEMAPHORE_REASON
    else:
        facts.usdt_addresses = sorted({p.address for p in sites})


def _check_syscalls(spec: TraceSpec, facts: HostFacts, errors: dict[str, str]) -> None:
    for name in spec.syscalls:
        nr = syscalls.number(name)
        if nr is None:
            errors["syscalls"] = f"unknown system call {name!r} on this host"
            return
        facts.syscalls.append(nr)


def _check_device(spec: TraceSpec, facts: HostFacts, errors: dict[str, str]) -> None:
    if spec.device is None:
        return
    try:
        major, minor = Path(SYS_BLOCK, spec.device, "dev").read_text().split(":")
        facts.device = int(major) << 20 | int(minor)
    except (OSError, ValueError):
        have = ", ".join(block_devices()[:20]) or "none"
        errors["device"] = f"no block device {spec.device!r} on this host (have: {have})"


def _check_tracepoint(spec: TraceSpec, facts: HostFacts, errors: dict[str, str]) -> None:
    category, name = spec.tracepoint.split(":")
    try:
        bcc_env.ensure_mounted("tracefs", TRACING)
    except bcc_env.BpfUnavailable as exc:
        errors["tracepoint"] = str(exc)[:300]
        return
    if not os.path.isfile(os.path.join(TRACING, "events", category, name, "id")):
        errors["tracepoint"] = f"no tracepoint {spec.tracepoint} on this host"


# -- lists -----------------------------------------------------------------------
def block_devices() -> list[str]:
    try:
        return sorted(os.listdir(SYS_BLOCK))
    except OSError:
        return []


def tracepoints(prefix: str = "") -> list[str]:
    """"category:name" of every tracepoint, sorted."""
    bcc_env.ensure_mounted("tracefs", TRACING)
    text = Path(TRACING, "available_events").read_text()
    return sorted(line for line in text.split() if line.startswith(prefix))


class ProcessSampler:
    """Running processes with their CPU use over the last ~0.5 s.

    CPU% compares two readings of /proc/PID/stat: the previous query's when
    it is between 0.2 and 10 s old, otherwise two taken 0.5 s apart now.
    """

    def __init__(self) -> None:
        self._previous: tuple[float, dict[int, int]] | None = None

    def processes(self) -> list[dict]:
        now, ticks = time.monotonic(), _cpu_ticks()
        prev = self._previous
        if prev is None or not 0.2 <= now - prev[0] <= 10:
            prev = (now, ticks)
            time.sleep(0.5)
            now, ticks = time.monotonic(), _cpu_ticks()
        self._previous = (now, ticks)
        hz, elapsed = os.sysconf("SC_CLK_TCK"), max(now - prev[0], 1e-3)
        rows = []
        for pid, total in ticks.items():
            used = max(total - prev[1].get(pid, total), 0)
            info = _process_info(pid)
            if info is not None:
                info["cpu_percent"] = round(100.0 * used / hz / elapsed, 1)
                rows.append(info)
        rows.sort(key=lambda r: (-r["cpu_percent"], r["pid"]))
        return rows[:MAX_PROCESSES]


def _cpu_ticks() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            fields = text[text.rfind(")") + 2:].split()
            out[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
    return out


def _process_info(pid: int) -> dict | None:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        status = Path(f"/proc/{pid}/status").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    match = re.search(r"^Uid:\s*(\d+)", status, re.MULTILINE)
    uid = int(match.group(1)) if match else -1
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    cmdline = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip() or f"[{comm}]"
    return {"pid": pid, "comm": comm, "user": user, "cmdline": cmdline[:200]}


# -- collector.query -------------------------------------------------------------------
def answer(query: CollectorQuery, limits: Limits, sampler: ProcessSampler) -> CollectorAnswer:
    """The answer to one query; a refusal is a sentence in ``error``, never a traceback."""
    try:
        result = _answer(query.what, query.args, limits, sampler)
    except (ValueError, OSError, bcc_env.BpfUnavailable) as exc:
        return CollectorAnswer(query_id=query.query_id, error=str(exc)[:500])
    return CollectorAnswer(query_id=query.query_id, result=result)


def _answer(what: str, args: dict, limits: Limits, sampler: ProcessSampler) -> object:
    if what == "processes":
        return sampler.processes()
    if what == "devices":
        return {"devices": block_devices()}
    if what == "syscalls":
        return {"syscalls": sorted(set(syscalls.table().values()))}
    if what == "check":
        try:
            check(args.get("spec"), limits)
        except SpecErrors as exc:
            return {"errors": exc.errors}
        return {"errors": {}}
    if what == "tracepoints":
        names = tracepoints(_prefix(args))
        limit = _limit(args, MAX_TRACEPOINTS)
        return {"tracepoints": names[:limit], "truncated": len(names) > limit}
    binary = _query_binary(args)
    if what == "usdt_probes":
        return usdt.summary(binary)
    prefix, limit = _prefix(args), _limit(args, MAX_SYMBOLS)
    names = sorted(n for n in read_elf(binary, ElfSections.function_names)
                   if n.startswith(prefix))
    return {"symbols": names[:limit], "truncated": len(names) > limit}


def _query_binary(args: dict) -> str:
    path = args.get("binary")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("binary: an absolute path is required")
    if len(path) > MAX_PATH or ".." in path.split("/") or re.search(r"[\x00-\x1f]", path):
        raise ValueError("binary: must be a path without '..' or control characters")
    try:
        return check_binary(path)
    except ValueError as exc:
        raise ValueError(f"binary: {exc}") from None


def _prefix(args: dict) -> str:
    prefix = args.get("prefix", "")
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError("prefix: letters, digits and _ . : $ @, at most 128")
    return prefix


def _limit(args: dict, most: int) -> int:
    limit = args.get("limit", most)
    if type(limit) is not int or not 1 <= limit <= most:
        raise ValueError(f"limit: a whole number from 1 to {most}")
    return limit
