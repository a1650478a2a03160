"""A job with a known secret in every kind of sensitive field, for the leak tests.

:func:`planted_job` returns the job file's text and every planted secret by kind. The
HTTP steps carry the target's real credentials (it answers 401 to wrong ones), so the
job only succeeds when every secret comes back intact; the database and SFTP steps are
skipped (``when: "false"``) but carry their secrets all the same.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.runtime.http_target import HttpTarget
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import DirectorySource
from vecron.reconciler.sync import sync_once
from vecron.stores import Stores

JOB_NAME = "partner-sync"
CUSTOM_PATTERN = r"pin$"


@dataclass(frozen=True)
class PlantedJob:
    text: str
    secrets: dict[str, str]  # kind -> the secret value


def planted_job(target: HttpTarget, *, name: str = JOB_NAME) -> PlantedJob:
    def plant(kind: str) -> str:
        return f"planted-{kind}-{secrets.token_hex(6)}"

    oauth = target.oauth_client()
    host = target.url("").removeprefix("http://").rstrip("/")
    number = 100_000_000_000 + secrets.randbelow(900_000_000_000)
    found = {
        "numeric_variable": str(number),
        "webhook_secret": plant("webhook"),
        "secret_variable": target.bearer_token,
        "dsn_variable_password": plant("dsnvar"),
        "basic_password": target.basic_password,
        "bearer_token": target.bearer_token,
        "authorization_header": f"Bearer {target.bearer_token}",
        "api_key_header": plant("apikeyheader"),
        "url_password": target.basic_password,
        "oauth_client_secret": oauth.client_secret,
        "query_api_key": plant("query"),
        "body_password": plant("body"),
        "custom_pattern": plant("pin"),
        "dsn_url_password": plant("dsnurl"),
        "dsn_kv_password": plant("dsnkv"),
        "sftp_password": plant("sftppw"),
        "sftp_private_key": plant("sftpkey"),
        "sftp_passphrase": plant("sftppass"),
    }
    job: dict[str, Any] = {
        "name": name,
        "triggers": {"manual": True, "webhook": {"secret": found["webhook_secret"]}},
        "variables": {
            "API_TOKEN": found["secret_variable"],
            "REPORT_DSN": f"postgresql://reporter:{found['dsn_variable_password']}@db/reports",
            "REGION": "eu",
            "LEGACY_PASSWORD": number,
        },
        "steps": [
            {
                "id": "basic",
                "type": "http",
                "config": {
                    "url": target.url("/auth/basic"),
                    "auth": {
                        "type": "basic",
                        "username": target.basic_username,
                        "password": found["basic_password"],
                    },
                },
            },
            {
                "id": "bearer",
                "type": "http",
                "config": {
                    "url": target.url("/auth/bearer"),
                    "auth": {"type": "bearer", "token": found["bearer_token"]},
                },
            },
            {
                "id": "header",
                "type": "http",
                "config": {
                    "url": target.url("/auth/bearer"),
                    "headers": {"Authorization": found["authorization_header"]},
                },
            },
            {
                "id": "variable",
                "type": "http",
                "config": {
                    "url": target.url("/auth/bearer"),
                    "headers": {"Authorization": "Bearer ${API_TOKEN}"},
                },
            },
            {
                "id": "userinfo",
                "type": "http",
                "config": {
                    "url": f"http://{target.basic_username}:{found['url_password']}@{host}/auth/basic"
                },
            },
            {
                "id": "oauth",
                "type": "http",
                "config": {
                    "url": target.url("/oauth/protected"),
                    "auth": {
                        "type": "oauth2",
                        "token_url": target.url("/oauth/token"),
                        "client_id": oauth.client_id,
                        "client_secret": found["oauth_client_secret"],
                    },
                },
            },
            {
                "id": "echo",
                "type": "http",
                "config": {
                    "method": "POST",
                    "url": target.url("/echo"),
                    "headers": {"X-Api-Key": found["api_key_header"], "X-Region": "${REGION}"},
                    "query": {"api_key": found["query_api_key"]},
                    "body": {
                        "password": found["body_password"],
                        "account_pin": found["custom_pattern"],
                    },
                },
            },
            {
                "id": "warehouse",
                "type": "database",
                "when": "false",
                "config": {
                    "database_type": "postgresql",
                    "connection_string": (
                        f"postgresql://loader:{found['dsn_url_password']}@db:5432/warehouse"
                    ),
                    "query": "SELECT 1",
                },
            },
            {
                "id": "legacy",
                "type": "database",
                "when": "false",
                "config": {
                    "database_type": "postgresql",
                    "connection_string": (
                        f"host=db user=legacy password={found['dsn_kv_password']} dbname=x"
                    ),
                    "query": "SELECT 1",
                },
            },
            {
                "id": "fetch",
                "type": "sftp",
                "when": "false",
                "config": {
                    "operation": "download",
                    "host": "sftp.example.com",
                    "auth": {
                        "type": "password",
                        "username": "partner",
                        "password": found["sftp_password"],
                    },
                    "remote_path": "/out/*.csv",
                },
            },
            {
                "id": "fetch_key",
                "type": "sftp",
                "when": "false",
                "config": {
                    "operation": "download",
                    "host": "sftp.example.com",
                    "auth": {
                        "type": "ssh_key",
                        "username": "partner",
                        "private_key": found["sftp_private_key"],
                        "passphrase": found["sftp_passphrase"],
                    },
                    "remote_path": "/out/*.csv",
                },
            },
        ],
    }
    return PlantedJob(text=json.dumps(job, indent=2), secrets=found)


def leaks(data: bytes, planted: PlantedJob) -> list[str]:
    """The kinds of planted secrets found in ``data`` (bytes of any export)."""
    found = []
    for kind, value in planted.secrets.items():
        if value.encode() in data:
            found.append(kind)
    return found


async def sync_jobs(stores: Stores, repo: Path, files: dict[str, str]) -> None:
    """Write ``files`` into the folder ``repo`` and sync it into ``stores``."""
    for relative, text in files.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    await sync_once(DirectorySource(repo), stores, SyncOptions(allow_empty=True))
