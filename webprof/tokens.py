"""Random URL-safe tokens that a command line will not mistake for options.

``secrets.token_urlsafe`` draws from A-Z, a-z, 0-9, "-" and "_", so about one
token in 64 starts with "-", which argparse (``webprof collect --token T``,
``webprof unshare T``) reads as an option.  Tokens that grant access (API
tokens, share links) are stored only as :func:`token_digest`.  Pure Python.
"""

from __future__ import annotations

import hashlib
import secrets


def url_token(nbytes: int = 32) -> str:
    """``secrets.token_urlsafe(nbytes)``, redrawn until it starts with a letter or digit."""
    while True:
        token = secrets.token_urlsafe(nbytes)
        if token[0].isalnum():
            return token


def token_digest(token: str) -> str:
    """SHA-256 hex of a token: what is stored, so a leaked database leaks no working token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
