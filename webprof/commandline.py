"""How a ``webprof`` sub-command that needs Django runs.

Each one loads the settings and applies pending migrations first (as ``serve``
does), runs, and turns every expected failure into one line on stderr and exit
code 2: a :class:`CommandError`, a database that cannot be reached, a file that
cannot be read.  Importing this module configures nothing: Django's settings
are read when :func:`prepare_django` runs, so the commands' modules import
their models inside the functions that :func:`command` wraps.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

import django
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DatabaseError

EXIT_ERROR = 2


class CommandError(Exception):
    """An expected failure; its message is printed as the one error line."""


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webprof.settings")
    django.setup()


def migrate() -> None:
    call_command("migrate", interactive=False, verbosity=0)


def prepare_django() -> bool:
    """Load settings and migrate; on a configuration error say so, return False."""
    try:
        setup_django()
        migrate()
    except ImproperlyConfigured as exc:
        print(f"webprof: configuration error: {exc}", file=sys.stderr)
        return False
    return True


def prepare(who: str) -> bool:
    """Load Django and migrate (as ``serve`` does); False after saying why not."""
    try:
        return prepare_django()
    except DatabaseError as exc:
        print(f"{who}: cannot open the database: {first_line(exc)}", file=sys.stderr)
        return False


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Set up Django, run ``func``, and report failures as one line, exit 2."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        if not prepare(f"webprof {args.command}"):
            return EXIT_ERROR
        try:
            return func(args)
        except CommandError as exc:
            print(f"webprof {args.command}: {exc}", file=sys.stderr)
        except DatabaseError as exc:
            print(f"webprof {args.command}: database error: {first_line(exc)}",
                  file=sys.stderr)
        except OSError as exc:
            print(f"webprof {args.command}: {exc.strerror or exc}"
                  f"{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr)
        return EXIT_ERROR

    return run
