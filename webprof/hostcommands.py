"""``webprof host enroll|revoke|list``: per-host collector tokens (webprof/hostkeys.py)."""

from __future__ import annotations

import argparse
import json
import sys

from .commandline import CommandError, command


@command
def host(args: argparse.Namespace) -> int:
    # Loads models: only once command() has set Django up.
    from .hostkeys import HostCredential, HostCredentialError, enroll, revoke

    try:
        if args.action == "enroll":
            token, replaced = enroll(args.name)
            print(token)
            print(f"collector token for {args.name} {'replaced' if replaced else 'created'}; "
                  "it is shown only this once and works for this host name only. On the "
                  "host: put it in a file of mode 0600 and run `webprof collect --server URL "
                  f"--name {args.name} --token-file FILE`.", file=sys.stderr)
        elif args.action == "revoke":
            revoke(args.name)
            print(f"revoked the collector token of {args.name} (a collector connected with it "
                  "is refused when it reconnects)")
        else:
            rows = [{"host": r.host, "prefix": r.prefix, "created": r.created.isoformat()}
                    for r in HostCredential.objects.all()]
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for r in rows:
                    print(f"{r['host']}  {r['prefix']}…  {r['created']}")
    except HostCredentialError as exc:
        raise CommandError(str(exc)) from None
    return 0
