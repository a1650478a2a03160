"""`vecron webhook sign`: the headers it prints verify, and its curl commands work.

Most tests call :func:`vecron.cli.main` in this process; those that feed stdin run
``python -m vecron`` as a user would, and the curl commands run in bash against a
real server that checks the signature with :func:`vecron.webhook.signing.verify`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support import require
from tests.webhook.serving import serve_app
from vecron.cli import main
from vecron.errors import SignatureRefused
from vecron.webhook.signing import verify

SECRET = "whsec-Str0ng & 'quoted' $ecret"
NOW = 1_760_000_000


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    return "HOOK_SECRET"


def sign(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["webhook", "sign", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def parse_headers(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines())


def vecron(*args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_it_prints_the_vecron_headers(capsys: pytest.CaptureFixture[str], secret_env: str) -> None:
    code, out, err = sign(
        capsys, "--secret-env", secret_env, "--data", '{"a": 1}', "--timestamp", str(NOW)
    )
    assert (code, err) == (0, "")
    headers = parse_headers(out)
    assert list(headers) == ["X-Vecron-Timestamp", "X-Vecron-Signature"]
    assert headers["X-Vecron-Timestamp"] == str(NOW)
    assert verify(headers, b'{"a": 1}', SECRET, ["vecron"], NOW) == "vecron"
    assert SECRET not in out


def test_the_timestamp_defaults_to_now(capsys: pytest.CaptureFixture[str], secret_env: str) -> None:
    before = time.time()
    code, out, _ = sign(capsys, "--secret-env", secret_env, "--data", "x")
    assert code == 0
    stamp = int(parse_headers(out)["X-Vecron-Timestamp"])
    assert int(before) <= stamp <= time.time()


def test_githubs_documented_example(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("It's a Secret to Everybody\n")  # the newline a file ends with
    code, out, _ = sign(
        capsys, "--secret-file", str(secret_file), "--scheme", "github", "--data", "Hello, World!"
    )
    assert code == 0
    assert out == (
        "X-Hub-Signature-256: "
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17\n"
    )


def test_a_body_file_is_signed_byte_for_byte(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, secret_env: str
) -> None:
    body = bytes(range(256)) + b"\r\n\n"
    (tmp_path / "body.bin").write_bytes(body)
    code, out, _ = sign(
        capsys, "--secret-env", secret_env, "--data-file", str(tmp_path / "body.bin")
    )
    assert code == 0
    assert verify(parse_headers(out), body, SECRET, ["vecron"]) == "vecron"
    with pytest.raises(SignatureRefused):
        verify(parse_headers(out), body.rstrip(), SECRET, ["vecron"])


def test_a_secret_file_loses_only_one_trailing_newline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for text, secret in [("s\r\n", "s"), ("s\n\n", "s\n"), (" s ", " s ")]:
        (tmp_path / "secret").write_bytes(text.encode())
        code, out, _ = sign(capsys, "--secret-file", str(tmp_path / "secret"), "--data", "b")
        assert code == 0
        assert verify(parse_headers(out), b"b", secret, ["vecron"]) == "vecron"


def test_the_secret_can_come_from_stdin() -> None:
    result = vecron("webhook", "sign", "--secret-stdin", "--data", "b", stdin=SECRET.encode())
    assert result.returncode == 0, result.stderr
    assert verify(parse_headers(result.stdout.decode()), b"b", SECRET, ["vecron"])


def test_the_body_can_come_from_stdin() -> None:
    body = b'{"from": "stdin"}\n\x00\xff'
    result = vecron(
        "webhook", "sign", "--secret-env", "S", "--data-file", "-", stdin=body, S=SECRET
    )
    assert result.returncode == 0, result.stderr
    assert verify(parse_headers(result.stdout.decode()), body, SECRET, ["vecron"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--secret", SECRET, "--data", "b"], "ambiguous option: --secret"),
        (["--data", "b"], "one of the arguments --secret-env --secret-file --secret-stdin"),
        (["--secret-env", "NOT_SET_ANYWHERE", "--data", "b"], "NOT_SET_ANYWHERE is not set"),
        (["--secret-env", "EMPTY_SECRET", "--data", "b"], "the secret from $EMPTY_SECRET is empty"),
        (["--secret-env", "HOOK_SECRET"], "one of the arguments --data --data-file is required"),
        (["--secret-stdin", "--data-file", "-"], "stdin cannot give both"),
        (["--secret-env", "HOOK_SECRET", "--data", "b", "--timestamp", "-5"], "not a Unix time"),
        (["--secret-env", "HOOK_SECRET", "--data", "b", "--timestamp", "1e9"], "not a Unix time"),
        (
            [
                "--secret-env",
                "HOOK_SECRET",
                "--data",
                "b",
                "--scheme",
                "github",
                "--timestamp",
                "1",
            ],
            "--timestamp applies to the vecron scheme only",
        ),
        (["--secret-env", "HOOK_SECRET", "--data", "b", "--scheme", "md5"], "invalid choice"),
        (["--secret-env", "HOOK_SECRET", "--data-file", "/no/such/file"], "No such file"),
        (["--secret-file", "/no/such/secret", "--data", "b"], "No such file"),
    ],
)
def test_usage_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    secret_env: str,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("EMPTY_SECRET", "")
    code, out, err = sign(capsys, *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert SECRET not in err


def test_a_body_curl_cannot_carry_is_refused(
    capsys: pytest.CaptureFixture[str], secret_env: str
) -> None:
    result = vecron(
        "webhook", "sign", "--secret-env", "S", "--data-file", "-", "--curl", "http://h/",
        stdin=b"\xff\xfe", S=SECRET,
    )  # fmt: skip
    assert result.returncode == 2
    assert b"use --data-file PATH" in result.stderr
    code, _, err = sign(capsys, "--secret-env", secret_env, "--data", "a\0b", "--curl", "http://h")
    assert code == 2
    assert "NUL" in err


# --- the curl commands, run ----------------------------------------------------------


async def receive(request: Request) -> Response:
    body = await request.body()
    try:
        scheme = verify(request.headers, body, SECRET, ["vecron", "github"])
    except SignatureRefused as exc:
        return JSONResponse({"error": exc.reason}, status_code=401)
    return Response(
        body,
        headers={"x-scheme": scheme, "x-content-type": request.headers["content-type"]},
    )


@pytest.fixture(scope="module")
def hook_url() -> Iterator[str]:
    require(os.path.exists("/usr/bin/curl"), "curl is not installed")
    with serve_app(Starlette(routes=[Route("/webhooks/abc", receive, methods=["POST"])])) as url:
        yield f"{url}/webhooks/abc"


def run_curl(command: str) -> tuple[str, bytes]:
    """Run the printed command in bash; the scheme the server accepted and the body
    it received (curl -i shows the response headers)."""
    assert command.startswith("curl ")
    result = subprocess.run(
        ["bash", "-c", command.replace("curl ", "curl -i ", 1)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), result.stdout
    headers = dict(line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:] if line)
    return f"{headers['x-scheme']} {headers['x-content-type']}", body


@pytest.mark.parametrize("scheme", ["vecron", "github"])
@pytest.mark.parametrize(
    "data",
    ['{"invoice": 42}', 'it\'s "quoted" $HOME `x` \\n', "@/etc/passwd", "lines\n\nend\n", "é€😀"],
)
def test_the_curl_command_delivers_inline_data(
    capsys: pytest.CaptureFixture[str], secret_env: str, hook_url: str, scheme: str, data: str
) -> None:
    code, out, _ = sign(
        capsys, "--secret-env", secret_env, "--scheme", scheme, "--data", data, "--curl", hook_url
    )
    assert code == 0
    assert SECRET not in out
    assert run_curl(out) == (f"{scheme} application/json", data.encode())


def test_the_curl_command_sends_a_file(
    capsys: pytest.CaptureFixture[str], secret_env: str, hook_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "a body; $(rm -rf x).bin"
    body = bytes(range(256)) * 4 + b"\n"
    path.write_bytes(body)
    code, out, _ = sign(
        capsys,
        "--secret-env",
        secret_env,
        "--data-file",
        str(path),
        "--content-type",
        "application/octet-stream",
        "--curl",
        hook_url,
    )
    assert code == 0
    assert "--data-binary" in out
    assert run_curl(out) == ("vecron application/octet-stream", body)


def test_the_curl_command_carries_a_body_from_stdin(hook_url: str) -> None:
    body = '{"piped": true}\n'
    result = vecron(
        "webhook", "sign", "--secret-env", "S", "--data-file", "-", "--curl", hook_url,
        stdin=body.encode(), S=SECRET,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert run_curl(result.stdout.decode()) == ("vecron application/json", body.encode())


def test_extra_headers_join_the_curl_command_and_are_checked(
    capsys: pytest.CaptureFixture[str], secret_env: str
) -> None:
    base = ["--secret-env", secret_env, "--data", "{}"]
    curl = ["--curl", "http://h/webhooks/x"]
    code, out, _ = sign(capsys, *base, *curl, "--header", "X-Request-Id: r-1")
    assert code == 0
    assert "'X-Request-Id: r-1'" in out
    code, _, err = sign(capsys, *base, *curl, "--header", "no-colon")
    assert code == 2
    assert "Name: value" in err
    code, _, err = sign(capsys, *base, "--header", "A: b")
    assert code == 2
    assert "--curl" in err
