"""The scheduler against real stores: exactly-once fires, misfires, concurrency, types."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vecron.backends.database import ExecutionStatus, TriggerSource
from vecron.backends.queue import MemoryQueue
from vecron.reconciler.plan import SyncOptions
from vecron.reconciler.sources import DirectorySource
from vecron.reconciler.sync import sync_once
from vecron.runtime.scheduler import Scheduler
from vecron.runtime.trigger import create_execution
from vecron.stores import Stores

JOB = """\
name: {name}
allow_concurrent: {concurrent}
schedule: {schedule}
steps:
  - id: s
    type: http
    config: {{url: "https://example.invalid/"}}
"""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def setup(
    stores: Stores, tmp_path: Path, schedule: str, *, name: str = "job", concurrent: bool = True
) -> None:
    folder = tmp_path / "repo" / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        JOB.format(name=name, schedule=schedule, concurrent=str(concurrent).lower())
    )
    await sync_once(DirectorySource(tmp_path / "repo"), stores, SyncOptions(allow_empty=True))


async def executions(stores: Stores, name: str = "job") -> list[tuple[str, str, datetime | None]]:
    records = await stores.database.list_executions(job_name=name, limit=1000)
    return sorted((str(r.status), str(r.trigger_source), r.scheduled_at) for r in records)


async def start_clock(stores: Stores, name: str = "job") -> Clock:
    job = await stores.database.get_job(name)
    assert job.next_run_at is not None
    return Clock(job.next_run_at)


async def test_a_due_job_fires_once_and_moves_on(stores: Stores, tmp_path: Path) -> None:
    await setup(stores, tmp_path, '{type: cron, expression: "*/10 * * * * ?", timezone: UTC}')
    clock = await start_clock(stores)
    queue = MemoryQueue()
    scheduler = Scheduler(stores=stores, queue=queue, clock=clock)
    fired = await scheduler.tick()
    assert [(f.job_name, f.lateness_seconds) for f in fired] == [("job", 0.0)]
    assert await scheduler.tick() == []  # the same instant: nothing more
    job = await stores.database.get_job("job")
    assert job.next_run_at == clock.now + timedelta(seconds=10)
    assert await queue.pending() == 1
    (record,) = await stores.database.list_executions(job_name="job")
    assert record.trigger_source == TriggerSource.SCHEDULED
    assert record.scheduled_at == clock.now
    assert record.status == ExecutionStatus.QUEUED


async def test_two_schedulers_fire_each_fire_once(stores: Stores, tmp_path: Path) -> None:
    await setup(stores, tmp_path, '{type: cron, expression: "* * * * * ?", timezone: UTC}')
    clock = await start_clock(stores)
    queue = MemoryQueue()
    a = Scheduler(stores=stores, queue=queue, clock=clock)
    b = Scheduler(stores=stores, queue=queue, clock=clock)
    for _ in range(20):
        results = await asyncio.gather(a.tick(), b.tick(), a.tick(), b.tick())
        assert sum(len(r) for r in results) == 1
        clock.advance(1)
    fires = [scheduled for _, _, scheduled in await executions(stores)]
    assert len(fires) == 20
    assert len(set(fires)) == 20


@pytest.mark.parametrize(("policy", "expected"), [("run_once", 1), ("skip", 0)])
async def test_after_downtime_at_most_one_catch_up(
    stores: Stores, tmp_path: Path, policy: str, expected: int
) -> None:
    schedule = f'{{type: cron, expression: "0 * * * * ?", timezone: UTC, misfire: {policy}}}'
    await setup(stores, tmp_path, schedule)
    clock = await start_clock(stores)
    clock.advance(30 * 60 + 30)  # down for half an hour: 30 fires missed
    scheduler = Scheduler(stores=stores, queue=MemoryQueue(), clock=clock)
    await scheduler.tick()
    await scheduler.tick()
    assert len(await executions(stores)) == expected
    job = await stores.database.get_job("job")
    assert job.next_run_at is not None
    assert clock.now < job.next_run_at <= clock.now + timedelta(minutes=1)


async def test_a_miss_older_than_the_grace_window_is_not_caught_up(
    stores: Stores, tmp_path: Path
) -> None:
    schedule = '{type: cron, expression: "0 0 * * * ?", timezone: UTC, misfire_grace_seconds: 600}'
    await setup(stores, tmp_path, schedule)
    clock = await start_clock(stores)
    clock.advance(3600 + 5)  # the last fire was missed by an hour: outside the grace
    await Scheduler(stores=stores, queue=MemoryQueue(), clock=clock).tick()
    assert await executions(stores) == []


async def test_a_fire_while_a_run_is_in_flight_is_recorded_as_skipped(
    stores: Stores, tmp_path: Path
) -> None:
    schedule = '{type: cron, expression: "*/5 * * * * ?", timezone: UTC}'
    await setup(stores, tmp_path, schedule, concurrent=False)
    clock = await start_clock(stores)
    await create_execution(stores.database, "job", trigger_source=TriggerSource.MANUAL)
    fired = await Scheduler(stores=stores, queue=MemoryQueue(), clock=clock).tick()
    assert [f.skipped_reason for f in fired] == ["concurrent"]
    statuses = [status for status, _, _ in await executions(stores)]
    assert sorted(statuses) == ["queued", "skipped"]


async def test_one_time_fires_once(stores: Stores, tmp_path: Path) -> None:
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    await setup(stores, tmp_path, f"{{type: one_time, at: '{at.isoformat()}'}}")
    clock = await start_clock(stores)
    assert clock.now == at
    scheduler = Scheduler(stores=stores, queue=MemoryQueue(), clock=clock)
    assert len(await scheduler.tick()) == 1
    clock.advance(86400)
    assert await scheduler.tick() == []
    assert (await stores.database.get_job("job")).next_run_at is None


async def test_fixed_delay_counts_from_completion(stores: Stores, tmp_path: Path) -> None:
    await setup(stores, tmp_path, "{type: fixed_delay, interval: 30s}")
    clock = await start_clock(stores)
    scheduler = Scheduler(stores=stores, queue=MemoryQueue(), clock=clock)
    (fired,) = await scheduler.tick()
    assert (await stores.database.get_job("job")).next_run_at is None  # waits for the run
    clock.advance(100)
    assert await scheduler.tick() == []
    assert fired.execution_id is not None
    claimed = await stores.database.claim_execution(
        fired.execution_id, worker_id="w", lease_seconds=60
    )
    assert claimed is not None
    finished_at = datetime.now(UTC)
    await stores.database.finish_execution(
        fired.execution_id, worker_id="w", status=ExecutionStatus.SUCCEEDED, error=None
    )
    clock.now = finished_at + timedelta(seconds=1)
    await scheduler._reschedule_fixed_delay(force=True)
    job = await stores.database.get_job("job")
    assert job.next_run_at is not None
    assert abs((job.next_run_at - finished_at).total_seconds() - 30) < 2


async def test_sync_changes_take_effect_without_a_restart(stores: Stores, tmp_path: Path) -> None:
    await setup(stores, tmp_path, '{type: cron, expression: "*/10 * * * * ?", timezone: UTC}')
    clock = await start_clock(stores)
    scheduler = Scheduler(stores=stores, queue=MemoryQueue(), clock=clock)
    assert len(await scheduler.tick()) == 1
    # Disabled by the repository: no more fires.
    await setup(
        stores,
        tmp_path,
        '{type: cron, expression: "*/10 * * * * ?", timezone: UTC}\nenabled: false',
    )
    clock.advance(60)
    assert await scheduler.tick() == []
    # Enabled again with another schedule: the new one applies.
    await setup(stores, tmp_path, '{type: cron, expression: "0 0 12 * * ?", timezone: UTC}')
    job = await stores.database.get_job("job")
    assert job.next_run_at is not None
    assert job.next_run_at.hour == 12


async def test_the_loop_fires_on_time(stores: Stores, tmp_path: Path) -> None:
    await setup(stores, tmp_path, '{type: cron, expression: "* * * * * ?", timezone: UTC}')
    late: list[float] = []
    scheduler = Scheduler(
        stores=stores, queue=MemoryQueue(), on_fire=lambda f: late.append(f.lateness_seconds)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(3.5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert 2 <= len(late) <= 5
    assert max(late) < 0.5, late
