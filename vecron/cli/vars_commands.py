"""Commands on global variables: ``vars set``, ``vars list``, ``vars unset``.

A variable set here has the source ``cli``: it wins over one of the same name from the
repository's ``variables.yaml``, and no sync touches it. A ``--secret`` value is
encrypted at rest by the database and never printed; there is deliberately no way to
reveal one from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC
from typing import Any

from vecron.cli.output import print_table, when
from vecron.errors import ConfigurationError, UsageError, VecronError
from vecron.settings import Settings
from vecron.spec.models import VARIABLE_NAME_PATTERN

STDIN = "-"
MAX_NAME_LENGTH = 128  # as VariableName in vecron.spec.models
_NAME = re.compile(VARIABLE_NAME_PATTERN)


def register(commands: Any) -> None:
    variables = commands.add_parser(
        "vars",
        help="global variables: set, list, unset",
        description="Global variables, used as ${NAME} in job files: those of the "
        "repository's variables.yaml and those set here, which win over them. A job's own "
        "variables win over both.",
    )
    actions = variables.add_subparsers(dest="vars_command", metavar="COMMAND")
    actions.required = True

    set_ = actions.add_parser(
        "set",
        help="create or replace a variable",
        description="Create or replace a variable. VALUE comes from stdin when it is - or "
        "left out: a terminal prompts without echo, a pipe is read whole (less one "
        "trailing newline). Use that for secrets, to keep them out of shell history and ps.",
    )
    set_.add_argument("name", metavar="NAME")
    set_.add_argument("value", nargs="?", default=STDIN, metavar="VALUE")
    set_.add_argument(
        "--secret",
        action="store_true",
        help="encrypt the value at rest and mask it in every listing and log",
    )
    set_.set_defaults(handler=_set)

    list_ = actions.add_parser("list", help="list the variables (secret values masked)")
    list_.add_argument("--format", choices=("text", "json"), default="text")
    list_.set_defaults(handler=_list)

    unset = actions.add_parser(
        "unset",
        help="delete a variable set with `vars set`",
        description="Delete a variable set with `vars set`. One from variables.yaml is "
        "removed by deleting it there: the next sync would bring it back otherwise.",
    )
    unset.add_argument("name", metavar="NAME")
    unset.set_defaults(handler=_unset)


def _set(args: argparse.Namespace) -> int:
    from vecron.backends.database import VariableSource
    from vecron.stores import open_stores

    name = _checked_name(args.name)
    from_stdin = args.value == STDIN
    value = _read_value(name) if from_stdin else args.value
    if args.secret and not from_stdin:
        print(
            "warning: a secret given as an argument can stay in shell history and show in "
            "ps; leave VALUE out (or pass -) to read it from stdin",
            file=sys.stderr,
        )
    settings = Settings.from_env()

    async def run() -> Any:
        async with open_stores(settings) as stores:
            current = await stores.database.get_variables(decrypt=False)
            if args.secret and any(record.secret for record in current.values()):
                # One key for every secret: a secret written with another key than the
                # running system's (a terminal without its VECRON_SECRET_KEY) would only
                # fail later, in the worker, when a run needs it.
                try:
                    await stores.database.get_variables(decrypt=True)
                except ConfigurationError as exc:
                    raise ConfigurationError(
                        f"{name} not set: {exc}. Set VECRON_SECRET_KEY as the running "
                        "vecron has it, or unset the stored secrets and set them again"
                    ) from None
            await stores.database.set_variable(
                name, value, secret=args.secret, source=VariableSource.CLI
            )
            return current.get(name)

    previous = asyncio.run(run())
    line = f"set {name}" + (" (secret)" if args.secret else "")
    if previous is not None and previous.source == VariableSource.REPO:
        line += (
            "; it overrides the value from variables.yaml "
            f"(`vecron vars unset {name}` and a sync bring that back)"
        )
    print(line)
    if previous is not None and previous.secret and not args.secret:
        print(
            f"note: {name} was a secret; it is now stored in plain text "
            "(set it again with --secret to keep it secret)",
            file=sys.stderr,
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    from vecron.backends.database import MASK
    from vecron.stores import open_stores

    settings = Settings.from_env()

    async def run() -> Any:
        async with open_stores(settings) as stores:
            return await stores.database.get_variables(decrypt=False)

    records = list(asyncio.run(run()).values())
    # Masked here as well as in the database: a listing never carries a secret.
    rows = [
        {
            "name": r.name,
            "value": MASK if r.secret else r.value,
            "secret": r.secret,
            "source": str(r.source),
            "updated_at": r.updated_at.astimezone(UTC).isoformat(),
        }
        for r in records
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no variables (set one with `vecron vars set NAME VALUE`)")
        return 0
    table = [("NAME", "VALUE", "SECRET", "SOURCE", "UPDATED (UTC)")]
    for r in records:
        table.append(
            (
                r.name,
                MASK if r.secret else _printable(r.value),
                "yes" if r.secret else "no",
                str(r.source),
                when(r.updated_at),
            )
        )
    print_table(table)
    return 0


def _unset(args: argparse.Namespace) -> int:
    from vecron.backends.database import VariableSource
    from vecron.stores import open_stores

    name = _checked_name(args.name)
    settings = Settings.from_env()

    async def run() -> None:
        async with open_stores(settings) as stores:
            record = (await stores.database.get_variables(decrypt=False)).get(name)
            if record is not None and record.source == VariableSource.REPO:
                raise VecronError(
                    f"variable {name!r} comes from variables.yaml: remove it there and sync "
                    "(unset here, the next sync would bring it back)"
                )
            if record is None or not await stores.database.delete_variable(name):
                raise VecronError(f"no variable {name!r}")

    asyncio.run(run())
    print(f"unset {name}")
    return 0


def _checked_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise UsageError(
            f"invalid variable name {name!r}: use letters, digits and _, not starting "
            f"with a digit, at most {MAX_NAME_LENGTH} characters"
        )
    return name


def _read_value(name: str) -> str:
    """The value from stdin: a no-echo prompt on a terminal, else all of it."""
    if sys.stdin is None:
        raise UsageError(f"no VALUE for {name} and no stdin to read it from")
    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"value of {name}: ")
    else:
        try:
            value = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"the value of {name} on stdin is not UTF-8 text") from None
        value = value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value
    if not value:
        raise UsageError(f"no value for {name} on stdin; to set an empty value, pass '' as VALUE")
    return value


def _printable(value: str) -> str:
    """``value`` on one line: control characters (newlines, tabs) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
