"""The collector opens a binary named in a query or a trace as root: it resolves
the path itself, refuses /proc, /sys and /dev, opens only regular files
without blocking, never reveals files that not every user may read, and
refuses files over the size cap."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from collectors.elf import MAX_FILE_BYTES, ElfSymbols
from collectors.tracecheck import ProcessSampler, answer
from webprof.core.trace_messages import CollectorQuery
from webprof.core.tracespec import Limits

pytestmark = pytest.mark.unit

PYTHON = os.path.realpath(sys.executable)


def ask(what: str, binary: str, timeout_s: float = 10) -> tuple[object, str | None]:
    """The collector's answer (result, error); fails if it does not come in time."""
    box: list = []
    query = CollectorQuery(query_id=1, what=what, args={"binary": binary})
    thread = threading.Thread(target=lambda: box.append(
        answer(query, Limits(), ProcessSampler())), daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert box, f"the {what} query on {binary} blocked for {timeout_s} s"
    return box[0].result, box[0].error


@pytest.fixture
def elf_copy(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    shutil.copyfile(PYTHON, path)
    path.chmod(0o755)
    return path


def test_a_world_readable_elf_file_is_answered(elf_copy: Path) -> None:
    result, error = ask("symbols", str(elf_copy))
    assert not error and isinstance(result, dict) and "symbols" in result


def test_a_file_not_every_user_may_read_is_refused_like_a_missing_one(
        elf_copy: Path, tmp_path: Path) -> None:
    elf_copy.chmod(0o700)
    for what in ("symbols", "usdt_probes"):
        result, error = ask(what, str(elf_copy))
        assert result is None and error == (
            f"binary: no file {elf_copy} readable by every user on this host")
        missing = tmp_path / "missing"
        assert ask(what, str(missing))[1] == (
            f"binary: no file {missing} readable by every user on this host")


@pytest.mark.parametrize("target", ["/proc/self/status", "/proc/kmsg", "/sys/kernel/notes",
                                    "/sys/kernel/tracing/trace_pipe",
                                    "/dev/null", "/dev/zero"])
def test_a_symlink_into_proc_sys_or_dev_is_refused(tmp_path: Path, target: str) -> None:
    link = tmp_path / "innocent"
    link.symlink_to(target)
    for path in (str(link), target):
        result, error = ask("symbols", path)
        assert result is None and "/proc, /sys, /dev are not read" in error, error


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o644)
    result, error = ask("symbols", str(fifo))
    assert result is None and "not a regular file" in error


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.write(Path(PYTHON).read_bytes()[:4096])
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk space used
    big.chmod(0o644)
    assert "larger than 2 GiB" in ask("symbols", str(big))[1]


def test_symbolization_opens_only_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done: list = []

    def read() -> None:
        try:
            ElfSymbols.from_path(str(fifo))
        except ValueError as exc:
            done.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    assert done and "not a regular file" in str(done[0])


def test_a_file_truncated_while_it_is_read_is_an_error_not_a_crash(elf_copy: Path) -> None:
    """A mapped file that shrinks kills its reader with SIGBUS; a user could do
    that to the root collector with a binary of their own.  The reader copies
    what it needs with pread instead, and a short read is an ElfError."""
    script = (
        "import os, sys\n"
        "from collectors.elf import ElfError, ElfSections, read_elf\n"
        "path = sys.argv[1]\n"
        "def use(elf):\n"
        "    os.truncate(path, 64)\n"
        "    return elf.function_names()\n"
        "try:\n"
        "    read_elf(path, use)\n"
        "except ElfError as exc:\n"
        "    print('ElfError', exc)\n")
    run = subprocess.run([sys.executable, "-c", script, str(elf_copy)], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert run.stdout.startswith("ElfError") and "shrank" in run.stdout
