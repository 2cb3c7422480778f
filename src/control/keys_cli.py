"""``dispatch keys ...``: manage API keys from the command line (the lead wires it into the CLI).

    dispatch keys create --role author [--clear-numbers] [--label NAME]   # prints the token once
    dispatch keys revoke KEY_ID
    dispatch keys list

Wiring: ``keys_main(argv, keys_path)`` with the arguments after ``keys`` and the key file of
the loaded config (``ControlConfig.keys_path``); it returns the process exit code. The
``dispatch`` command's own ``--config FILE`` and ``--data-dir DIR`` are accepted after the
action too (``dispatch keys create --role author --config FILE``): a caller that loads the
config from them parses first (``build_parser().parse_args``), reads ``config`` / ``data_dir``
from the result when given, and calls ``run_keys(args, keys_path)``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from control.keys import KeyStore, Role


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """The ``dispatch`` command's global options, so they may follow the action as well.
    Absent ones are not set at all (``SUPPRESS``): the caller keeps what it parsed before."""
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help="TOML config file (env DISPATCH__* overrides it)")
    parser.add_argument("--data-dir", default=argparse.SUPPRESS, help="override data_dir")


def build_parser(prog: str = "dispatch keys") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Manage control API keys")
    _add_config_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print its token once")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--clear-numbers", action="store_true",
                        help="the key may see clear phone numbers")
    create.add_argument("--label", default="", help="who holds it (shown in the audit trail)")
    revoke = sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    listing = sub.add_parser("list", help="list keys (ids, roles, state; never secrets)")
    for action in (create, revoke, listing):
        _add_config_options(action)
    return parser


def keys_main(argv: Sequence[str], keys_path: str | os.PathLike[str],
              out: TextIO | None = None) -> int:
    return run_keys(build_parser().parse_args(list(argv)), keys_path, out)


def run_keys(args: argparse.Namespace, keys_path: str | os.PathLike[str],
             out: TextIO | None = None) -> int:
    """Carry out parsed ``args`` (``build_parser``) on the key file ``keys_path``."""
    out = out or sys.stdout
    store = KeyStore(keys_path)
    if args.command == "create":
        token, record = store.create_key(args.role, clear_numbers=args.clear_numbers,
                                         label=args.label)
        print(token, file=out)
        print(f"key id {record.key_id}, role {record.role.value}"
              f"{', clear numbers' if record.clear_numbers else ''}. "
              "Store the token now: it is not kept and cannot be shown again.", file=sys.stderr)
        return 0
    if args.command == "revoke":
        if not store.revoke_key(args.key_id):
            print(f"no key with id {args.key_id}", file=sys.stderr)
            return 1
        return 0
    for key in store.list_keys():
        state = "revoked" if key.revoked else "active"
        flags = " clear-numbers" if key.clear_numbers else ""
        print(f"{key.key_id}  {key.role.value:<9} {state:<7}{flags}  {key.label}", file=out)
    return 0
