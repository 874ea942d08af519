"""``webprof doctor``: check that this machine can run the collectors.

Each check prints ``ok`` or ``FAIL`` with what was found and, for failures,
how to fix it.  The bpf and perf_event_open probes go straight to the
syscalls through ctypes, so they tell a missing kernel feature apart from a
bcc problem; the last check compiles and loads a trivial program with bcc.
Exit status is 1 when any check failed.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import struct
from collections.abc import Callable

from collectors import bcc_env

# Syscall numbers differ per architecture (asm/unistd.h).
SYSCALLS = {"x86_64": {"bpf": 321, "perf_event_open": 298},
            "aarch64": {"bpf": 280, "perf_event_open": 241}}
BPF_MAP_CREATE = 0
BPF_MAP_TYPE_ARRAY = 2
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0

Result = tuple[bool, str]  # (passed, detail or how to fix)


def check_privileges() -> Result:
    problem = bcc_env.check_privileges()
    return (False, problem) if problem else (True, f"euid {os.geteuid()}")


def _syscall(name: str, *args: object) -> tuple[int, int]:
    numbers = SYSCALLS.get(platform.machine())
    if numbers is None:
        return -1, 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(numbers[name], *args)
    return ret, ctypes.get_errno()


def check_bpf_syscall() -> Result:
    """Create (and close) a one-entry array map with the raw bpf() syscall."""
    attr = ctypes.create_string_buffer(
        struct.pack("<IIIII", BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0), 128)
    fd, err = _syscall("bpf", ctypes.c_int(BPF_MAP_CREATE), attr, ctypes.c_uint(128))
    if fd < 0:
        return False, (f"bpf(BPF_MAP_CREATE) failed: {os.strerror(err) if err else 'unknown arch'}"
                       "; run as root and check kernel.unprivileged_bpf_disabled / "
                       "CONFIG_BPF_SYSCALL")
    os.close(fd)
    return True, "BPF_MAP_CREATE works"


def check_tracefs() -> Result:
    try:
        for fstype, target in bcc_env.MOUNTS:
            bcc_env.ensure_mounted(fstype, target)
    except bcc_env.BpfUnavailable as exc:
        return False, str(exc)
    return True, "debugfs and tracefs mounted"


def check_kernel_headers() -> Result:
    source = os.environ.get("BCC_KERNEL_SOURCE") or bcc_env.configured_kernel_source()
    if source:
        if os.path.isdir(os.path.join(source, "include")):
            return True, f"BCC_KERNEL_SOURCE={source}"
        return False, (f"{source} (from BCC_KERNEL_SOURCE or {bcc_env.KERNEL_SOURCE_FILE}) "
                       "has no include/ directory; rerun scripts/setup.sh")
    build = f"/lib/modules/{platform.release()}/build"
    if os.path.isdir(build):
        return True, build
    if os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return True, "kernel ships its headers (/sys/kernel/kheaders.tar.xz)"
    return False, (f"no kernel headers at {build}: install linux-headers-$(uname -r), or "
                   "run scripts/setup.sh to merge generic headers and record them in "
                   f"{bcc_env.KERNEL_SOURCE_FILE}")


def check_btf() -> Result:
    if os.path.exists("/sys/kernel/btf/vmlinux"):
        return True, "/sys/kernel/btf/vmlinux"
    return False, "no /sys/kernel/btf/vmlinux: the kernel was built without CONFIG_DEBUG_INFO_BTF"


def check_perf_events() -> Result:
    """Open (and close) a cpu-clock software event on CPU 0, as the collector does."""
    attr = ctypes.create_string_buffer(
        struct.pack("<IIQ", PERF_TYPE_SOFTWARE, 128, PERF_COUNT_SW_CPU_CLOCK), 128)
    fd, err = _syscall("perf_event_open", attr, ctypes.c_int(-1), ctypes.c_int(0),
                       ctypes.c_int(-1), ctypes.c_ulong(0))
    if fd < 0:
        try:
            with open("/proc/sys/kernel/perf_event_paranoid") as f:
                paranoid = f.read().strip()
        except OSError:
            paranoid = "?"
        return False, (f"perf_event_open(cpu-clock) failed: "
                       f"{os.strerror(err) if err else 'unknown arch'} "
                       f"(perf_event_paranoid={paranoid}); run as root or with CAP_PERFMON")
    os.close(fd)
    return True, "cpu-clock software event opens"


def check_bcc_compile() -> Result:
    try:
        bcc_env.prepare()
    except bcc_env.BpfUnavailable as exc:
        return False, str(exc)
    try:
        from bcc import BPF

        bpf = BPF(text=b"int probe(void *ctx) { return 0; }")
        bpf.load_func(b"probe", BPF.PERF_EVENT)
        bpf.cleanup()
    except Exception as exc:  # bcc reports compile/load problems as plain Exception
        return False, (f"{type(exc).__name__}: {exc}; install bpfcc-tools python3-bpfcc "
                       "libbpfcc and kernel headers (scripts/setup.sh)")
    return True, "trivial program compiled and loaded"


CHECKS: list[tuple[str, Callable[[], Result]]] = [
    ("privileges", check_privileges),
    ("bpf syscall", check_bpf_syscall),
    ("tracefs", check_tracefs),
    ("kernel headers", check_kernel_headers),
    ("BTF", check_btf),
    ("perf events", check_perf_events),
    ("bcc compile", check_bcc_compile),
]


def main(args: argparse.Namespace | None = None) -> int:
    failed = 0
    for name, check in CHECKS:
        try:
            passed, detail = check()
        except Exception as exc:  # a check must report, never crash the report
            passed, detail = False, f"{type(exc).__name__}: {exc}"
        failed += not passed
        print(f"{'ok  ' if passed else 'FAIL'}  {name:<15} {detail}", flush=True)
    print("all checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0
