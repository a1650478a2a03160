"""The ``vecron`` command line.

Each group of commands lives in its own module and registers its sub-commands on
the parser; this module owns the parser, and turns errors into exit codes in one
place: 0 success, 1 a failed check or a failed action, 2 a usage or I/O error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vecron import __version__
from vecron.errors import UsageError, VecronError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from vecron.cli import (
        repo_commands,
        run_commands,
        spec_commands,
        token_commands,
        transfer_commands,
        up_commands,
        vars_commands,
        webhook_commands,
    )

    parser = _Parser(
        prog="vecron",
        description="A declarative GitOps job runner.",
    )
    parser.add_argument("--version", action="version", version=f"vecron {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    spec_commands.register(commands)
    repo_commands.register(commands)
    run_commands.register(commands)
    up_commands.register(commands)
    vars_commands.register(commands)
    webhook_commands.register(commands)
    token_commands.register(commands)
    transfer_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (the console script exits with it)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    # `plan` keeps 2 for "changes pending": its usage errors are plain errors.
    usage_code = EXIT_FAILED if arguments[:1] == ["plan"] else EXIT_USAGE
    try:
        args = build_parser().parse_args(arguments)
        handler: Handler = args.handler
        return handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return usage_code
    except VecronError as exc:  # before OSError: BackendUnavailable is a ConnectionError
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return usage_code
    except KeyboardInterrupt:
        return 130


def run() -> None:
    sys.exit(main())
