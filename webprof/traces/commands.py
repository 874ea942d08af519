"""``webprof token create|revoke|list``: API tokens for ``Authorization: Bearer``.

A token is printed once, on stdout alone (so ``TOKEN=$(webprof token create
alice)`` works), with a note on stderr; only its digest and 8-character
prefix are stored.  Failures are one line on stderr and exit code 2, like
the session commands.
"""

from __future__ import annotations

import argparse
import json
import sys

from django.contrib.auth import get_user_model

from ..commandline import CommandError, command


@command
def token(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from ..auth import TokenError

    actions = {"create": create, "revoke": revoke, "list": list_tokens}
    try:
        return actions[args.action](args)
    except TokenError as exc:
        raise CommandError(str(exc)) from None


def create(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from ..auth import create_token

    secret, row = create_token(args.username, args.name or "")
    print(secret)
    print(f"API token {row.prefix}… for {args.username} created; it is shown only this once. "
          f"Send it as 'Authorization: Bearer <token>' (docs/API.md); revoke it with "
          f"`webprof token revoke {row.prefix}`.", file=sys.stderr)
    return 0


def revoke(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from ..auth import revoke_token

    row = revoke_token(args.token)
    print(f"revoked token {row.prefix}… of {row.user.get_username()}")
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from ..accounts import ApiToken

    rows = ApiToken.objects.select_related("user").order_by("user__username", "-created")
    if args.username:
        if not get_user_model().objects.filter(username=args.username).exists():
            raise CommandError(f"no user named {args.username!r}")
        rows = rows.filter(user__username=args.username)
    items = [{"prefix": t.prefix, "user": t.user.get_username(), "name": t.name,
              "created": t.created.isoformat(timespec="seconds"),
              "last_used": t.last_used.isoformat(timespec="seconds") if t.last_used else None,
              "revoked": t.revoked.isoformat(timespec="seconds") if t.revoked else None}
             for t in rows]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("no API tokens")
        return 0
    print(f"{'PREFIX':<9} {'USER':<16} {'STATE':<8} {'CREATED':<20} {'LAST USED':<20} NAME")
    for t in items:
        state = "revoked" if t["revoked"] else "active"
        print(f"{t['prefix']:<9} {t['user']:<16} {state:<8} {t['created'][:19]:<20} "
              f"{(t['last_used'] or '-')[:19]:<20} {t['name']}")
    return 0
