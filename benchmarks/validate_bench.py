"""Validate 2,000 generated job files: vecron against check-jsonschema.

check-jsonschema checks structure only (the generated JSON Schema); vecron also
checks references, variables, conditions, schedules and secrets. Both run as the
commands a CI job would run, on the same files, best of a few runs each. Prints
files/s and the ratio of vecron's time to the peer's (goal: <= 1.0).

    .venv/bin/python benchmarks/validate_bench.py [--files 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TEMPLATE = """\
# generated job {i}
name: job-{i:05d}
description: Generated job number {i} for the validation benchmark
schedule:
  type: cron
  expression: "0 {minute} {hour} ? * MON-FRI"
  timezone: Asia/Ho_Chi_Minh
triggers:
  manual: true
  webhook: {{enabled: {webhook}, secret: "${{secret:HOOK_{i}}}", rate_limit: 60}}
max_retries: 3
variables:
  PARTNER: partner-{i}
  LIMIT: {limit}
steps:
  - id: fetch
    type: http
    config:
      url: "https://api.example.invalid/partners/${{PARTNER}}/items?limit=${{LIMIT}}"
      method: GET
      headers: {{Accept: application/json, Authorization: "Bearer ${{secret:API_TOKEN}}"}}
      expected_status: [200]
  - id: save
    type: database
    when: "steps.fetch.response.status == 200 and steps.fetch.response.body.count > 0"
    config:
      database_type: postgresql
      connection_string: "${{secret:WAREHOUSE_DSN}}"
      query: >-
        INSERT INTO items (partner, id, name) VALUES
        (${{PARTNER}}, {{{{steps.fetch.response.body.items[0].id}}}},
         {{{{steps.fetch.response.body.items[0]['display name']}}}})
  - id: export
    type: file_processing
    config:
      operation: write
      format: csv
      destination_path: "items-{{{{execution.date}}}}.csv"
      data_source: "{{{{steps.fetch.response.body.items}}}}"
"""


def generate(folder: Path, count: int) -> None:
    rng = random.Random(7)
    for i in range(count):
        text = TEMPLATE.format(
            i=i,
            minute=rng.randrange(60),
            hour=rng.randrange(24),
            webhook=str(rng.random() < 0.5).lower(),
            limit=rng.randrange(1, 500),
        )
        (folder / f"job-{i:05d}.yaml").write_text(text, encoding="utf-8")


def best_of(runs: int, command: list[str]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"{command[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    peer = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
    if peer is None:
        sys.exit("check-jsonschema is not installed (pip install -e '.[dev]')")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, args.files)
        files = sorted(str(p) for p in folder.glob("*.yaml"))
        vecron = best_of(args.runs, [str(BIN / "vecron"), "validate", str(folder)])
        schema = str(REPO / "schemas" / "job.schema.json")
        checker = best_of(args.runs, [peer, "--schemafile", schema, *files])
    print(f"files                  {args.files}")
    print(f"vecron validate        {vecron:7.3f} s  {args.files / vecron:8.0f} files/s")
    print(f"check-jsonschema       {checker:7.3f} s  {args.files / checker:8.0f} files/s")
    print(f"ratio vecron/peer      {vecron / checker:7.3f}  (goal <= 1.0; lower is better)")


if __name__ == "__main__":
    main()
