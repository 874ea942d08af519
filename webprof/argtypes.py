"""What the ``webprof`` command accepts as a frequency, a duration, a pid ...

Each is an argparse ``type=``: it returns the parsed value or raises
``ArgumentTypeError`` with a message that names the bad text, which argparse
prints as a usage error (exit code 2).
"""

from __future__ import annotations

import argparse

from .core.hostname import host_name_problem
from .core.kinds import LIVE as LIVE_KINDS


def frequency(text: str) -> int:
    value = _int(text, "frequency")
    if not 1 <= value <= 999:
        raise argparse.ArgumentTypeError(f"frequency must be 1..999 Hz, got {value}")
    return value


def duration(text: str) -> float:
    value = _float_seconds(text)
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"duration must be > 0 and <= 86400 s, got {text}")
    return value


def interval(text: str) -> float:
    value = duration(text)
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"interval must be 0.1..60 s, got {text}")
    return value


def pid(text: str) -> int:
    value = _int(text, "pid")
    if not 0 < value < 2**22:
        raise argparse.ArgumentTypeError(f"pid must be a positive process id, got {value}")
    return value


def non_negative(text: str) -> int:
    value = _int(text, "value")
    if not 0 <= value < 2**40:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {value}")
    return value


def port(text: str) -> int:
    value = _int(text, "port")
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {value}")
    return value


def seconds(text: str) -> float:
    value = _float_seconds(text)
    if not 0 <= value < 10**9:
        raise argparse.ArgumentTypeError(f"seconds must be >= 0, got {text}")
    return value


def host_name(text: str) -> str:
    """A host name the server accepts (webprof/core/hostname.py)."""
    problem = host_name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def collector_list(text: str) -> list[str]:
    """``cpu,offcpu,runqlat`` -> a list of known collector kinds, no repeats."""
    known = LIVE_KINDS
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown collectors {', '.join(bad) or '(none given)'}; choose from "
            f"{','.join(known)}")
    return list(dict.fromkeys(names))


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None


def _float_seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
