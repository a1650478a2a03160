"""Commands on webhooks: ``webhook sign`` (``url`` and ``rotate`` join it).

``sign`` computes the headers of a signed delivery, to test a job's webhook by hand or
from a script. The secret never comes from the command line, where shell history and
``ps`` would keep it: it comes from an environment variable, a file or stdin.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from vecron.errors import UsageError
from vecron.webhook import signing

STDIN = "-"
DEFAULT_CONTENT_TYPE = "application/json"


def register(commands: Any) -> None:
    webhook = commands.add_parser(
        "webhook",
        help="webhooks: sign a test delivery",
        description="Webhooks that start jobs: POST /webhooks/{id}, signed with the job's secret.",
    )
    actions = webhook.add_subparsers(dest="webhook_command", metavar="COMMAND")
    actions.required = True
    _register_sign(actions)


def _register_sign(actions: Any) -> None:
    sign = actions.add_parser(
        "sign",
        help="the signature headers of a body (or a ready curl command)",
        description="Print the headers that sign a body for a job's webhook, one "
        "'Name: value' a line, or with --curl a curl command that sends it. The vecron "
        "scheme signs '{timestamp}.{body}' (X-Vecron-Timestamp, X-Vecron-Signature) and "
        "is accepted for 300 s around its timestamp; the github scheme signs the body "
        "alone (X-Hub-Signature-256). A secret read from a file or a pipe loses one "
        "trailing newline.",
    )
    secret = sign.add_mutually_exclusive_group(required=True)
    secret.add_argument("--secret-env", metavar="NAME", help="read the secret from $NAME")
    secret.add_argument("--secret-file", metavar="PATH", help="read the secret from a file")
    secret.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the secret from stdin (a terminal prompts without echo)",
    )
    body = sign.add_mutually_exclusive_group(required=True)
    body.add_argument("--data", metavar="STRING", help="the body, as given")
    body.add_argument(
        "--data-file", metavar="PATH", help="read the body from a file (- for stdin), byte for byte"
    )
    sign.add_argument(
        "--scheme",
        choices=signing.SCHEMES,
        default="vecron",
        help="the signature scheme the job accepts (default: vecron)",
    )
    sign.add_argument(
        "--timestamp",
        type=_timestamp,
        metavar="N",
        help="Unix seconds to sign with (vecron scheme; default: now)",
    )
    sign.add_argument(
        "--curl",
        metavar="URL",
        help="print a curl command that POSTs the body to URL (with the vecron scheme, "
        "run it within 300 s)",
    )
    sign.add_argument(
        "--content-type",
        default=DEFAULT_CONTENT_TYPE,
        metavar="TYPE",
        help=f"the Content-Type of the curl command (default: {DEFAULT_CONTENT_TYPE})",
    )
    sign.set_defaults(handler=_sign)


def _sign(args: argparse.Namespace) -> int:
    if args.secret_stdin and args.data_file == STDIN:
        raise UsageError("stdin cannot give both the secret and the body: use a file for one")
    if args.timestamp is not None and args.scheme != "vecron":
        raise UsageError(f"--timestamp applies to the vecron scheme only, not {args.scheme}")
    secret = _read_secret(args)
    body = _read_body(args)
    headers = signing.sign(secret, body, scheme=args.scheme, timestamp=args.timestamp)
    if args.curl:
        print(_curl_command(args, headers, body))
    else:
        for name, value in headers.items():
            print(f"{name}: {value}")
    return 0


def _read_secret(args: argparse.Namespace) -> str:
    if args.secret_env is not None:
        value = os.environ.get(args.secret_env)
        if value is None:
            raise UsageError(f"environment variable {args.secret_env} is not set")
        where = f"${args.secret_env}"
    elif args.secret_file is not None:
        try:
            value = Path(args.secret_file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"the secret in {args.secret_file} is not UTF-8 text") from None
        value = _chomp(value)
        where = args.secret_file
    else:
        value = _secret_from_stdin()
        where = "stdin"
    if not value:
        raise UsageError(f"the secret from {where} is empty")
    return value


def _secret_from_stdin() -> str:
    if sys.stdin is None:
        raise UsageError("--secret-stdin: there is no stdin to read from")
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("webhook secret: ")
    try:
        return _chomp(sys.stdin.buffer.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError("the secret on stdin is not UTF-8 text") from None


def _read_body(args: argparse.Namespace) -> bytes:
    if args.data is not None:
        # The bytes the shell passed, even where they are not valid in the locale.
        return os.fsencode(args.data)
    if args.data_file == STDIN:
        if sys.stdin is None:
            raise UsageError("--data-file -: there is no stdin to read from")
        return sys.stdin.buffer.read()
    return Path(args.data_file).read_bytes()


def _curl_command(args: argparse.Namespace, headers: dict[str, str], body: bytes) -> str:
    words = ["curl", "-sS", "-X", "POST", args.curl, "-H", f"Content-Type: {args.content_type}"]
    for name, value in headers.items():
        words += ["-H", f"{name}: {value}"]
    if args.data_file not in (None, STDIN):
        words += ["--data-binary", f"@{args.data_file}"]
    else:
        # --data-raw sends the text as is: no '@file' reading, no newline stripping.
        words += ["--data-raw", _printable_body(body)]
    return " ".join(shlex.quote(word) for word in words)


def _printable_body(body: bytes) -> str:
    """``body`` as shell text, when a shell argument can carry it exactly."""
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        raise UsageError(
            "a body that is not UTF-8 text, or has NUL bytes, cannot be a curl argument: "
            "use --data-file PATH"
        )
    return text


def _chomp(value: str) -> str:
    """``value`` less one trailing newline (``\\n`` or ``\\r\\n``), as files and pipes end."""
    return value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value


def _timestamp(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f"not a Unix time in whole seconds: {value!r}")
    return int(value)
