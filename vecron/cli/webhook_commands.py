"""Commands on webhooks: ``webhook url``, ``webhook rotate`` and ``webhook sign``.

``url`` prints a job's webhook address (and, asked, its generated secret); ``rotate``
gives the job a new id, and a new secret where vecron generated it, so that the old
address answers 404 at once. ``sign`` computes the headers of a signed delivery, to
test a job's webhook by hand or from a script. The secret never comes from the command
line, where shell history and ``ps`` would keep it: it comes from an environment
variable, a file or stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

from vecron.errors import UsageError
from vecron.webhook import signing

STDIN = "-"
DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
PUBLIC_URL_ENV = "VECRON_PUBLIC_URL"


def register(commands: Any) -> None:
    webhook = commands.add_parser(
        "webhook",
        help="webhooks: a job's address, rotation, signing a test delivery",
        description="Webhooks that start jobs: POST /webhooks/{id}, signed with the job's secret.",
    )
    actions = webhook.add_subparsers(dest="webhook_command", metavar="COMMAND")
    actions.required = True
    _register_url(actions)
    _register_rotate(actions)
    _register_sign(actions)


def _register_url(actions: Any) -> None:
    url = actions.add_parser(
        "url",
        help="a job's webhook address",
        description="Print the address senders POST to: BASE/webhooks/ID. BASE is "
        f"--base-url, else ${PUBLIC_URL_ENV}, else {DEFAULT_BASE_URL}.",
    )
    url.add_argument("job", metavar="JOB")
    url.add_argument("--base-url", metavar="URL", help="the server's public address")
    url.add_argument(
        "--show-secret",
        action="store_true",
        help="also print the secret on a second line (one vecron generated or the file "
        "holds; a ${secret:…} reference is named, not printed)",
    )
    url.set_defaults(handler=_url)


def _register_rotate(actions: Any) -> None:
    rotate = actions.add_parser(
        "rotate",
        help="a new webhook id (and generated secret); the old address stops at once",
        description="Give JOB's webhook a new id, and a new secret when vecron generated "
        "the current one (a secret the job file names stays). The old address answers "
        "404 from now on; print the new one.",
    )
    rotate.add_argument("job", metavar="JOB")
    rotate.add_argument("--base-url", metavar="URL", help="the server's public address")
    rotate.set_defaults(handler=_rotate)


def _base_url(args: argparse.Namespace) -> str:
    base = args.base_url or os.environ.get(PUBLIC_URL_ENV) or DEFAULT_BASE_URL
    return base.rstrip("/")


async def _webhook_of(stores: Any, name: str) -> tuple[Any, Any]:
    """A job's record and its webhook trigger; ``UsageError`` when it has none."""
    from vecron.runtime.trigger import load_definition

    job = await stores.database.get_job(name)
    definition = None
    if job.content_hash is not None:
        definition = await load_definition(stores.objects, job.job_id, job.content_hash)
    config = None if definition is None else definition.triggers.webhook
    if config is None or job.webhook_id is None:
        raise UsageError(f"job {name!r} has no webhook trigger (triggers.webhook)")
    return job, config


def _url(args: argparse.Namespace) -> int:
    from vecron.settings import Settings
    from vecron.stores import open_stores

    async def run() -> tuple[Any, Any]:
        async with open_stores(Settings.from_env()) as stores:
            return await _webhook_of(stores, args.job)

    job, config = asyncio.run(run())
    print(f"{_base_url(args)}/webhooks/{job.webhook_id}")
    if args.show_secret:
        if job.webhook_secret is not None:
            print(job.webhook_secret)
        else:
            print(f"the secret is {config.secret} (not stored by vecron)", file=sys.stderr)
    if not job.webhook_enabled:
        print(f"note: the webhook trigger of {args.job} is off", file=sys.stderr)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from vecron.settings import Settings
    from vecron.stores import open_stores

    async def run() -> tuple[str, bool]:
        async with open_stores(Settings.from_env()) as stores:
            job, config = await _webhook_of(stores, args.job)
            changes: dict[str, Any] = {"webhook_id": secrets.token_urlsafe(24)}
            generated = config.secret is None
            if generated:
                changes["webhook_secret"] = secrets.token_urlsafe(32)
            await stores.database.update_job(job.job_id, **changes)
            return changes["webhook_id"], generated

    webhook_id, generated = asyncio.run(run())
    print(f"{_base_url(args)}/webhooks/{webhook_id}")
    what = "a new id and a new secret" if generated else "a new id (the secret is the file's)"
    print(
        f"rotated {args.job}: {what}; the old address answers 404"
        + (f" (`vecron webhook url {args.job} --show-secret` prints it)" if generated else ""),
        file=sys.stderr,
    )
    return 0


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
    sign.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="another header for the curl command (repeatable), e.g. 'X-Request-Id: r-1'",
    )
    sign.set_defaults(handler=_sign)


def _sign(args: argparse.Namespace) -> int:
    if args.secret_stdin and args.data_file == STDIN:
        raise UsageError("stdin cannot give both the secret and the body: use a file for one")
    if args.timestamp is not None and args.scheme != "vecron":
        raise UsageError(f"--timestamp applies to the vecron scheme only, not {args.scheme}")
    for header in args.header:
        name, colon, _ = header.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise UsageError(f"--header {header!r}: write it as 'Name: value'")
    if args.header and not args.curl:
        raise UsageError("--header applies to the curl command (--curl URL)")
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
    for header in args.header:
        words += ["-H", header]
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
