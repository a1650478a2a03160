"""Structured logs: the run's ids on every line, text or JSON, secrets masked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.runtime.http_target import free_port
from vecron.backends.database import TriggerSource
from vecron.backends.queue import MemoryQueue
from vecron.logs import (
    configure_logging,
    current_log_context,
    log_context,
    register_secrets,
)
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import DirectorySource
from vecron.reconciler.sync import sync_once
from vecron.runtime.steps.base import StepRun
from vecron.runtime.trigger import create_execution
from vecron.runtime.worker import Worker, enqueue
from vecron.settings import Settings
from vecron.stores import open_stores

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
log = logging.getLogger("vecron.worker")

Configure = Callable[..., io.StringIO]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """``configure_logging`` into a fresh buffer; the logging setup is restored afterwards."""
    root, vecron = logging.getLogger(), logging.getLogger("vecron")
    saved = (list(root.handlers), root.level, vecron.level)

    def run(**options: Any) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(stream=stream, **options)
        return stream

    try:
        yield run
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        vecron.setLevel(saved[2])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_fields_and_the_extras(configure: Configure) -> None:
    stream = configure(fmt="json")
    log.info("before any run")
    with log_context(job_id="j-1", job_name="invoice-import", execution_id="e-1"):
        with log_context(step_id="fetch"):
            log.info("fetched %d rows", 3, extra={"status": "succeeded", "rows": [1, 2]})
        try:
            raise ValueError("bad data")
        except ValueError:
            log.exception("it broke")
    log.debug("not at info")
    logging.getLogger("somelib").info("a library's info is not shown")
    logging.getLogger("somelib").warning("a library's warning is")

    before, fetched, broke, library = lines(stream)
    assert set(before) == {"ts", "level", "logger", "message"}
    assert TS.match(before["ts"])
    assert fetched == {
        "ts": fetched["ts"],
        "level": "INFO",
        "logger": "vecron.worker",
        "message": "fetched 3 rows",
        "job_id": "j-1",
        "job_name": "invoice-import",
        "execution_id": "e-1",
        "step_id": "fetch",
        "status": "succeeded",
        "rows": [1, 2],
    }
    assert broke["level"] == "ERROR"
    assert "step_id" not in broke  # the step's block has ended
    assert broke["execution_id"] == "e-1"
    assert broke["exc"].startswith("Traceback")
    assert "ValueError: bad data" in broke["exc"]
    assert library == {**library, "logger": "somelib", "level": "WARNING"}
    assert "job_id" not in library


def test_text_lines_show_the_job_the_execution_and_the_step(configure: Configure) -> None:
    stream = configure(fmt="text", level="debug")
    with (
        log_context(job_id="j-1", job_name="invoice-import", execution_id="3f2a"),
        log_context(step_id="fetch"),
    ):
        log.debug("step finished: %s", "succeeded")
    log.info("no run here")

    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\S+Z DEBUG vecron\.worker \[job=invoice-import execution=3f2a step=fetch\] "
        r"step finished: succeeded",
        first,
    ), first
    assert TS.match(first.split()[0])
    assert re.fullmatch(r"\S+Z INFO vecron\.worker no run here", second), second


def test_configuring_twice_keeps_one_handler(configure: Configure) -> None:
    ours = list(logging.getLogger().handlers)
    first = configure(fmt="text")
    second = configure(fmt="json")
    added = [h for h in logging.getLogger().handlers if h not in ours]
    assert len(added) == 1
    log.warning("once")
    assert first.getvalue() == ""
    assert [line["message"] for line in lines(second)] == ["once"]


async def test_concurrent_runs_keep_their_own_ids(configure: Configure) -> None:
    stream = configure(fmt="json")
    started = asyncio.Barrier(2)

    async def child(execution_id: str, step: str) -> None:
        log.info("%s/%s", execution_id, step)

    async def run(execution_id: str) -> None:
        with log_context(execution_id=execution_id):
            await started.wait()  # both runs are bound before either logs
            for step in ("one", "two", "three"):
                with log_context(step_id=step):
                    log.info("%s/%s", execution_id, step)
                    await asyncio.sleep(0)  # let the other run in between
                    await asyncio.create_task(child(execution_id, step))  # inherits the ids
        assert current_log_context() == {}

    await asyncio.gather(run("e-a"), run("e-b"))
    found = lines(stream)
    assert len(found) == 12
    for line in found:
        assert line["message"] == f"{line['execution_id']}/{line['step_id']}"
    order = [line["execution_id"] for line in found]
    assert order != sorted(order)  # they did interleave


def test_registered_secrets_are_masked_in_that_run_only(configure: Configure) -> None:
    stream = configure(fmt="json")
    secret, quoted = "tok-9f8e7d", 'p"w\\x1'  # the second one changes when JSON-escaped
    with log_context(execution_id="e-1"):
        with log_context(step_id="login"):
            register_secrets([secret, quoted, "abc"])  # too short to mask safely
        log.info("token %s and %s", secret, quoted, extra={"sent": {"auth": secret}})
        try:
            raise RuntimeError(f"refused {secret}")
        except RuntimeError:
            log.exception("login failed (abc)")
    with log_context(execution_id="e-2"):
        log.info("another run never registered %s", secret)

    masked, failed, other = lines(stream)
    assert masked["message"] == "token ****** and ******"
    assert masked["sent"] == {"auth": "******"}
    assert "RuntimeError: refused ******" in failed["exc"]
    assert failed["message"] == "login failed (abc)"
    assert secret in other["message"]


def test_text_lines_are_masked_too(configure: Configure) -> None:
    stream = configure(fmt="text")
    with log_context(job_name="a", execution_id="e-1"):
        register_secrets(["hunter22"])
        try:
            raise RuntimeError("hunter22")
        except RuntimeError:
            log.exception("sent hunter22")
    text = stream.getvalue()
    assert "hunter22" not in text
    assert "sent ******" in text
    assert "RuntimeError: ******" in text


def test_an_unknown_format_is_refused(configure: Configure) -> None:
    with pytest.raises(ValueError, match="xml"):
        configure(fmt="xml")


# --- the worker -------------------------------------------------------------------

JOB = """\
name: {name}
steps:
  - id: first
    type: http
    config: {{url: "http://127.0.0.1:9/${{secret:TOKEN}}"}}
  - id: second
    type: http
    config: {{url: "http://127.0.0.1:9/"}}
"""
TOKEN = "tok-5e6f7a8b"


class _Interleaving:
    """Resolves the URL; the first steps of two runs wait for each other; then is careless."""

    step_type: ClassVar[str] = "http"

    def __init__(self) -> None:
        self.arrived = 0
        self.both = asyncio.Event()

    async def run(self, config: Any, run: StepRun) -> dict[str, Any]:
        run.values.render_text(config.url)
        if run.step_id == "first":
            self.arrived += 1
            if self.arrived == 2:
                self.both.set()
            await asyncio.wait_for(self.both.wait(), timeout=10)
        else:
            run.log.info("careless executor: the token is %s", TOKEN)
        return {}

    async def close(self) -> None:
        return None


async def test_the_worker_logs_each_step_with_its_own_run(
    configure: Configure, tmp_path: Path
) -> None:
    stream = configure(fmt="json")
    repo = tmp_path / "repo"
    (repo / "jobs").mkdir(parents=True)
    for name in ("a", "b"):
        (repo / "jobs" / f"{name}.yaml").write_text(JOB.format(name=name))
    settings = Settings(home=tmp_path / "home", secret_key="tests")
    async with open_stores(settings) as stores:
        await sync_once(DirectorySource(repo), stores, SyncOptions(allow_empty=True))
        queue = MemoryQueue(ack_wait_seconds=30)
        stop, settled = asyncio.Event(), []

        def on_settled(execution_id: str) -> None:
            settled.append(execution_id)
            if len(settled) == 2:
                stop.set()

        worker = Worker(
            stores=stores,
            queue=queue,
            executors={"http": _Interleaving()},
            environ={"VECRON_SECRET_TOKEN": TOKEN},
            on_settled=on_settled,
        )
        runs = {}
        for name in ("a", "b"):
            record = await create_execution(
                stores.database, name, trigger_source=TriggerSource.MANUAL
            )
            await enqueue(queue, record)
            runs[record.execution_id] = name
        await asyncio.wait_for(worker.run(stop), timeout=30)

    found = [line for line in lines(stream) if line["logger"] == "vecron.worker"]
    assert TOKEN not in stream.getvalue()
    finished = [line for line in found if line["message"].startswith("step finished")]
    assert len(finished) == 4
    for line in found:
        assert runs[line["execution_id"]] == line["job_name"]
    for line in finished:
        assert line["status"] == "succeeded"
        assert line["step_id"] in ("first", "second")
        assert isinstance(line["duration_seconds"], float)
    careless = [line for line in found if line["message"].startswith("careless")]
    assert [line["step_id"] for line in careless] == ["second", "second"]
    assert all(line["message"].endswith("the token is ******") for line in careless)


# --- vecron up --log-format json ---------------------------------------------------

SCHEDULED = """\
name: a
schedule: {{type: fixed_rate, interval: 1s}}
steps:
  - id: fetch
    type: http
    config: {{url: "http://127.0.0.1:{port}/nothing-here"}}
"""


def test_up_writes_json_lines_with_the_run_and_the_step(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "jobs").mkdir(parents=True)
    (repo / "jobs" / "a.yaml").write_text(SCHEDULED.format(port=free_port()))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VECRON_") or key == "VECRON_SECRET_KEY"
    }
    env["VECRON_HOME"] = str(tmp_path / "home")
    command = [sys.executable, "-m", "vecron", "up", str(repo), "--port", str(free_port())]
    process = subprocess.Popen(
        [*command, "--grace", "5s", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    stderr: list[str] = []
    step_seen = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            stderr.append(line)
            if '"step_id"' in line:
                step_seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert step_seen.wait(timeout=45), "".join(stderr)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)  # its few stdout lines fit in the pipe
        reader.join(10)
    assert process.returncode == 0, "".join(stderr)
    assert process.stdout is not None
    assert "vecron: stopped" in process.stdout.read()
    process.stdout.close()
    process.stderr.close()
    parsed = [json.loads(line) for line in stderr if line.strip()]
    finished = [p for p in parsed if p.get("step_id") == "fetch"]
    assert finished, parsed
    line = finished[0]
    assert line["message"].startswith("step finished: failed")
    assert line["status"] == "failed"
    assert line["job_name"] == "a"
    assert line["execution_id"]
    assert line["job_id"]
    assert TS.match(line["ts"])
