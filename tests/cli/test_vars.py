"""`vecron vars set|list|unset` as a user runs them: real processes on an embedded home."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import subprocess
import sys
import time
from pathlib import Path

from vecron.backends.database import MASK
from vecron.settings import Settings
from vecron.stores import open_stores

JOB = """\
name: a
steps:
  - id: s
    type: http
    config: {url: "https://example.invalid/${TOKEN}"}
"""


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECRON_")}
    return {**env, "VECRON_HOME": str(home), **extra}


def vecron(
    home: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=environment(home, **env),
        timeout=120,
        check=False,
    )


def listed(home: Path, **env: str) -> dict[str, dict[str, object]]:
    result = vecron(home, "vars", "list", "--format", "json", **env)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def stored_bytes(home: Path) -> bytes:
    """Every byte vecron keeps under ``home``: the SQLite file, its WAL, the objects."""
    return b"".join(path.read_bytes() for path in sorted(home.rglob("*")) if path.is_file())


async def decrypted(home: Path) -> dict[str, str]:
    async with open_stores(Settings(home=home)) as stores:
        records = await stores.database.get_variables(decrypt=True)
    return {name: record.value for name, record in records.items()}


def test_set_list_unset_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert vecron(home, "vars", "list").stdout.startswith("no variables")
    assert listed(home) == {}

    result = vecron(home, "vars", "set", "API_URL", "https://api.example/v1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "set API_URL\n"
    assert vecron(home, "vars", "set", "API_URL", "https://api.example/v2").returncode == 0
    assert vecron(home, "vars", "set", "EMPTY", "").returncode == 0

    rows = listed(home)
    assert sorted(rows) == ["API_URL", "EMPTY"]
    assert rows["API_URL"]["value"] == "https://api.example/v2"
    assert rows["API_URL"]["secret"] is False
    assert rows["API_URL"]["source"] == "cli"
    assert rows["EMPTY"]["value"] == ""
    table = vecron(home, "vars", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "VALUE", "SECRET", "SOURCE", "UPDATED", "(UTC)"]
    assert table[1].split()[:4] == ["API_URL", "https://api.example/v2", "no", "cli"]

    unset = vecron(home, "vars", "unset", "API_URL")
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout == "unset API_URL\n"
    assert sorted(listed(home)) == ["EMPTY"]

    again = vecron(home, "vars", "unset", "API_URL")
    assert again.returncode == 1
    assert again.stderr == "error: no variable 'API_URL'\n"


async def test_a_secret_is_masked_everywhere_and_encrypted_at_rest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    argument = f"arg-{secrets.token_hex(8)}"
    piped = f"pipe-{secrets.token_hex(8)}"

    by_argument = vecron(home, "vars", "set", "--secret", "PASSWORD", argument)
    assert by_argument.returncode == 0, by_argument.stderr
    assert by_argument.stdout == "set PASSWORD (secret)\n"
    assert "shell history" in by_argument.stderr  # a hint to use stdin instead

    # Read from a pipe, whole, less one trailing newline; never echoed.
    by_pipe = vecron(home, "vars", "set", "TOKEN", "--secret", stdin=f"{piped}\nline 2\n\n")
    assert by_pipe.returncode == 0, by_pipe.stderr
    assert by_pipe.stdout == "set TOKEN (secret)\n"
    assert by_pipe.stderr == ""
    dash = vecron(home, "vars", "set", "PLAIN", "-", stdin="from stdin\n")
    assert dash.returncode == 0, dash.stderr

    text = vecron(home, "vars", "list")
    as_json = vecron(home, "vars", "list", "--format", "json")
    for output in (text.stdout, as_json.stdout):
        assert argument not in output
        assert piped not in output
    rows = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert rows["PASSWORD"] == {**rows["PASSWORD"], "value": MASK, "secret": True}
    assert rows["TOKEN"] == {**rows["TOKEN"], "value": MASK, "secret": True}
    assert rows["PLAIN"]["value"] == "from stdin"
    password_row = next(line for line in text.stdout.splitlines() if line.startswith("PASSWORD"))
    assert password_row.split()[1:4] == [MASK, "yes", "cli"]

    at_rest = stored_bytes(home)
    assert (home / "vecron.db").is_file()
    assert argument.encode() not in at_rest
    assert piped.encode() not in at_rest
    assert b"from stdin" in at_rest  # plain values are stored as they are

    # The stored values are exactly what was given (the key is home/secret.key).
    values = await decrypted(home)
    assert values["PASSWORD"] == argument
    assert values["TOKEN"] == f"{piped}\nline 2\n"


def test_a_terminal_prompts_without_echo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    value = f"typed-{secrets.token_hex(8)}"
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "vecron", "vars", "set", "--secret", "TYPED"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=environment(home),
        start_new_session=True,  # no controlling terminal: getpass uses this one
    )
    os.close(terminal)
    try:
        seen = _read_until(controller, b"value of TYPED: ")
        os.write(controller, value.encode() + b"\n")
        seen += _read_until(controller, b"set TYPED (secret)")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    assert value.encode() not in seen
    assert listed(home)["TYPED"]["value"] == MASK


def _read_until(fd: int, marker: bytes, seconds: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while marker not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the other side is closed
                chunk = b""
            assert chunk, f"no {marker!r} in {seen!r}"
            seen += chunk
    return seen


def test_bad_names_and_missing_values_are_usage_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for name in ("1ABC", "with-dash", "a b", "", "x" * 129):
        for command in (("set", name, "value"), ("unset", name)):
            result = vecron(home, "vars", *command)
            assert result.returncode == 2, (command, result.stderr)
            assert "invalid variable name" in result.stderr
    assert vecron(home, "vars", "set", "x" * 128, "value").returncode == 0

    empty = vecron(home, "vars", "set", "NOTHING", stdin="")
    assert empty.returncode == 2
    assert "no value for NOTHING on stdin" in empty.stderr
    assert vecron(home, "vars", "bogus").returncode == 2
    assert vecron(home, "vars").returncode == 2
    assert "NOTHING" not in listed(home)


def test_unset_of_a_missing_variable_exits_1(tmp_path: Path) -> None:
    result = vecron(tmp_path / "home", "vars", "unset", "NEVER_SET")
    assert result.returncode == 1
    assert "no variable 'NEVER_SET'" in result.stderr


def test_repo_variables_are_listed_overridden_and_not_unset(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "variables.yaml").write_text("API_URL: https://repo.example/\nREGION: eu\n")
    (repo / "a.yaml").write_text(JOB)
    assert vecron(home, "sync", "--repo", str(repo)).returncode == 0

    rows = listed(home)
    assert rows["API_URL"]["source"] == "repo"
    assert rows["API_URL"]["value"] == "https://repo.example/"
    assert rows["REGION"]["source"] == "repo"

    refused = vecron(home, "vars", "unset", "REGION")
    assert refused.returncode == 1
    assert "variables.yaml" in refused.stderr
    assert listed(home)["REGION"]["source"] == "repo"

    override = vecron(home, "vars", "set", "API_URL", "https://cli.example/")
    assert override.returncode == 0, override.stderr
    assert "overrides the value from variables.yaml" in override.stdout
    assert listed(home)["API_URL"]["source"] == "cli"

    # The command line wins over the repository at every sync.
    assert vecron(home, "sync", "--repo", str(repo)).returncode == 0
    rows = listed(home)
    assert (rows["API_URL"]["value"], rows["API_URL"]["source"]) == ("https://cli.example/", "cli")
    # A second `set` of a cli variable says nothing about variables.yaml.
    assert "variables.yaml" not in vecron(home, "vars", "set", "API_URL", "x").stdout

    # Unset, the override goes, and the next sync brings the repository's value back.
    assert vecron(home, "vars", "unset", "API_URL").returncode == 0
    assert "API_URL" not in listed(home)
    assert vecron(home, "sync", "--repo", str(repo)).returncode == 0
    rows = listed(home)
    assert (rows["API_URL"]["value"], rows["API_URL"]["source"]) == (
        "https://repo.example/",
        "repo",
    )


def test_another_secret_key_cannot_read_or_mix_in_secrets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.yaml").write_text(JOB)
    assert vecron(home, "sync", "--repo", str(repo)).returncode == 0
    value = f"tok-{secrets.token_hex(8)}"
    first = vecron(home, "vars", "set", "--secret", "TOKEN", stdin=value, VECRON_SECRET_KEY="one")
    assert first.returncode == 0, first.stderr

    # A terminal without the running system's key cannot add a secret nobody could read.
    mixed = vecron(home, "vars", "set", "--secret", "OTHER", stdin="x", VECRON_SECRET_KEY="two")
    assert mixed.returncode == 1
    assert "VECRON_SECRET_KEY does not match" in mixed.stderr
    assert "OTHER" not in listed(home)
    # Plain variables need no key, and listing never decrypts.
    assert vecron(home, "vars", "set", "PLAIN", "p", VECRON_SECRET_KEY="two").returncode == 0
    assert listed(home, VECRON_SECRET_KEY="two")["TOKEN"]["value"] == MASK

    # Where the value is needed (a run), the wrong key fails the run with a clear error.
    run = vecron(home, "trigger", "a", "--wait", VECRON_SECRET_KEY="two")
    assert run.returncode == 1
    assert "failed: VECRON_SECRET_KEY does not match" in run.stdout
    assert value not in run.stdout + run.stderr

    same_key = vecron(home, "vars", "set", "--secret", "OTHER", stdin="x", VECRON_SECRET_KEY="one")
    assert same_key.returncode == 0, same_key.stderr
