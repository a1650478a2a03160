"""Sync 2,000 job files from Git: initial, no-op, and after one file changed.

Prints the times, the ratio of the one-change sync to the initial one (goal <= 0.05:
the work follows what changed, not the size of the repository) and the initial sync
against a floor: ``git ls-tree`` + ``git cat-file --batch`` + ruamel.yaml's C loader
over the same files, which is the least any Git-based sync has to do (goal: within
2x). Embedded stores by default (SQLite + a local directory); set VECRON_DATABASE_URL
and VECRON_OBJECT_STORE_URL to measure others.

    .venv/bin/python benchmarks/sync_bench.py [--files 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.validate_bench import TEMPLATE  # noqa: E402
from vecron.reconciler.plan import SyncOptions  # noqa: E402
from vecron.reconciler.sources import GitSource  # noqa: E402
from vecron.reconciler.sync import sync_once  # noqa: E402
from vecron.settings import Settings  # noqa: E402
from vecron.stores import open_stores  # noqa: E402


def git(cwd: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, input=data, capture_output=True, check=True
    ).stdout


def make_repo(folder: Path, count: int) -> None:
    git(folder, "init", "--quiet", "--initial-branch=main")
    git(folder, "config", "user.email", "bench@vecron.invalid")
    git(folder, "config", "user.name", "bench")
    jobs = folder / "jobs"
    jobs.mkdir()
    for i in range(count):
        text = TEMPLATE.format(i=i, minute=i % 60, hour=i % 24, webhook="true", limit=i % 500 + 1)
        (jobs / f"job-{i:05d}.yaml").write_text(text, encoding="utf-8")
    git(folder, "add", "--all")
    git(folder, "commit", "--quiet", "-m", "jobs")


def floor(folder: Path) -> float:
    started = time.perf_counter()
    listing = git(folder, "ls-tree", "-r", "-z", "HEAD").split(b"\0")
    blobs = [line.split()[2] for line in listing if line]
    output = git(folder, "cat-file", "--batch", data=b"\n".join(blobs) + b"\n")
    yaml = YAML(typ="safe", pure=False)
    position = 0
    while position < len(output):
        header_end = output.index(b"\n", position)
        size = int(output[position:header_end].split()[2])
        body = output[header_end + 1 : header_end + 1 + size]
        yaml.load(body)
        position = header_end + 1 + size + 1
    return time.perf_counter() - started


async def timed_sync(source: GitSource, settings: Settings) -> tuple[float, dict[str, int]]:
    async with open_stores(settings) as stores:
        started = time.perf_counter()
        result = await sync_once(source, stores, SyncOptions())
        return time.perf_counter() - started, result.plan.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "repo"
        folder.mkdir()
        make_repo(folder, args.files)
        settings = Settings.from_env(home=Path(tmp) / "home")
        source = GitSource(str(folder), ref="main", cache_dir=Path(tmp) / "cache")
        floor_seconds = min(floor(folder) for _ in range(3))
        initial, counts = asyncio.run(timed_sync(source, settings))
        assert counts["created"] == args.files, counts
        noop, _ = asyncio.run(timed_sync(source, settings))
        changed_file = folder / "jobs" / "job-00007.yaml"
        changed_file.write_text(
            changed_file.read_text().replace("max_retries: 3", "max_retries: 4")
        )
        git(folder, "commit", "--quiet", "-am", "one change")
        one, counts = asyncio.run(timed_sync(source, settings))
        assert counts["updated"] == 1, counts
    print(f"files                        {args.files}")
    print(
        f"backends                     {os.environ.get('VECRON_DATABASE_URL', 'sqlite')}, "
        f"{os.environ.get('VECRON_OBJECT_STORE_URL', 'local directory')}"
    )
    print(f"floor (ls-tree+cat-file+C)   {floor_seconds:8.3f} s")
    ratio = initial / floor_seconds
    print(f"initial sync                 {initial:8.3f} s   {ratio:6.2f}x floor (goal <= 2)")
    print(f"no-op re-sync                {noop:8.3f} s   {noop / initial:6.3f} of initial")
    share = one / initial
    print(f"one-change re-sync           {one:8.3f} s   {share:6.3f} of initial (goal <= 0.05)")


if __name__ == "__main__":
    main()
