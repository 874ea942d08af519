"""The collector token from a file (``webprof collect --token-file PATH``).

A token in argv is visible to every local user (``ps``, /proc/PID/cmdline);
in a file it is as private as the file.  So the file must be a regular file
owned by the user running the collector and closed to group and others (mode
0600 or stricter), checked on the opened descriptor so the checked file is
the file read.
"""

from __future__ import annotations

import os
import stat

MAX_TOKEN_FILE_BYTES = 4096


class TokenFileError(ValueError):
    """The token file cannot be used; ``str()`` says why and how to fix it."""


def read_token_file(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise TokenFileError(f"cannot open token file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TokenFileError(f"token file {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise TokenFileError(
                f"token file {path} is owned by uid {info.st_uid}, not by the user running "
                f"the collector (uid {os.geteuid()}); chown it")
        if info.st_mode & 0o077:
            raise TokenFileError(
                f"token file {path} has mode {stat.S_IMODE(info.st_mode):04o}: it must not be "
                f"readable or writable by group or others; chmod 600 {path}")
        data = os.read(fd, MAX_TOKEN_FILE_BYTES + 1)  # a regular file: one read is all
    finally:
        os.close(fd)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise TokenFileError(f"token file {path} is over {MAX_TOKEN_FILE_BYTES} bytes")
    token = data.decode("utf-8", errors="replace").strip()
    if not token or any(c.isspace() for c in token):
        raise TokenFileError(f"token file {path} must hold the token alone, on one line")
    return token
