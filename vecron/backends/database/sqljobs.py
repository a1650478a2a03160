"""The SQL store's jobs, variables, repository files and sync runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    IntegrityError,
)

from vecron.backends.database.base import (
    MASK,
    SYNC_COUNTS,
    JobRecord,
    RepoFileRecord,
    SyncRecord,
    SyncStatus,
    VariableRecord,
    VariableSource,
    new_id,
    strip_credentials,
)
from vecron.backends.database.sqlcore import (
    JOB_COLUMNS,
    SqlCore,
    canonical_id,
    jsonable,
    require_id,
    unknown_columns,
    violated,
)
from vecron.backends.database.tables import (
    jobs,
    repo_files,
    sync_runs,
    variables,
)
from vecron.errors import (
    AlreadyExists,
    JobNotFound,
    SyncNotFound,
)


class JobTables(SqlCore):
    """Jobs, variables, repository files and sync runs."""

    # -- jobs -----------------------------------------------------------------------------

    _JOB_UNIQUE = {"name": "job name", "webhook_id": "webhook id", "job_id": "job id"}

    async def list_jobs(self, *, include_disabled: bool = True) -> list[JobRecord]:
        query = select(jobs).order_by(jobs.c.name)
        if not include_disabled:
            query = query.where(jobs.c.enabled.is_(True))
        return [self._job(row) for row in await self._rows(query)]

    async def _one_job(self, column: str, value: str, missing: str) -> JobRecord:
        query = self._statement(
            ("job by", column), lambda: select(jobs).where(jobs.c[column] == bindparam("key"))
        )
        row = await self._run(
            lambda connection: connection.execute(query, {"key": value}).first(), write=False
        )
        if row is None:
            raise JobNotFound(missing)
        return self._job(row)

    async def get_job(self, name: str) -> JobRecord:
        return await self._one_job("name", name, name)

    async def get_job_by_id(self, job_id: str) -> JobRecord:
        canonical = canonical_id(job_id)
        if canonical is None:
            raise JobNotFound(job_id)
        return await self._one_job("job_id", canonical, job_id)

    async def get_job_by_webhook(self, webhook_id: str) -> JobRecord:
        return await self._one_job("webhook_id", webhook_id, webhook_id)

    async def insert_job(self, job: JobRecord) -> None:
        await self.insert_jobs([job])

    async def insert_jobs(self, records: Sequence[JobRecord]) -> None:
        rows = []
        for job in records:
            values = {name: getattr(job, name) for name in JOB_COLUMNS}
            values["job_id"] = require_id(job.job_id, "job_id")
            values["webhook_secret"] = self._encrypt(job.webhook_secret)
            rows.append(values)
        if not rows:
            return
        try:
            await self._run(lambda connection: connection.execute(jobs.insert(), rows))
        except IntegrityError as exc:
            if len(rows) == 1:
                raise self._job_conflict(exc, rows[0]) from None
            raise await self._bulk_conflict(exc, rows) from None

    async def _bulk_conflict(self, exc: IntegrityError, rows: list[dict[str, Any]]) -> Exception:
        column = violated(exc, jobs, list(self._JOB_UNIQUE))
        if column is None:
            return exc
        wanted = [row[column] for row in rows if row[column] is not None]
        found = await self._rows(select(jobs.c[column]).where(jobs.c[column].in_(wanted)))
        taken = {str(value) for (value,) in found}
        seen: set[str] = set()
        for value in map(str, wanted):
            if value in taken or value in seen:
                return AlreadyExists(self._JOB_UNIQUE[column], value)
            seen.add(value)
        return exc

    def _job_conflict(self, exc: IntegrityError, values: Mapping[str, Any]) -> Exception:
        column = violated(exc, jobs, [c for c in self._JOB_UNIQUE if c in values])
        if column is None:
            return exc
        return AlreadyExists(self._JOB_UNIQUE[column], str(values[column]))

    async def update_job(self, job_id: str, /, **changes: Any) -> JobRecord:
        statement = self._job_update(job_id, changes)
        try:
            row = await self._write_first(statement)
        except IntegrityError as exc:
            raise self._job_conflict(exc, changes) from None
        if row is None:
            raise JobNotFound(job_id)
        return self._job(row)

    async def update_jobs(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        # One executemany per set of changed columns: a sync updates thousands of rows.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        ids: dict[str, str] = {}
        for job_id, change in changes.items():
            unknown = set(change) - (JOB_COLUMNS - {"job_id", "created_at"})
            if unknown:
                raise unknown_columns("update_jobs()", unknown)
            canonical = canonical_id(job_id)
            if canonical is None:
                raise JobNotFound(job_id)
            ids[canonical] = job_id
            values = dict(change)
            if "webhook_secret" in values:
                values["webhook_secret"] = self._encrypt(values["webhook_secret"])
            values.setdefault("updated_at", self._now())
            params = {f"v_{key}": value for key, value in values.items()}
            params["k_job_id"] = canonical
            groups.setdefault(tuple(sorted(values)), []).append(params)
        if not groups:
            return

        def work(connection: Connection) -> None:
            found = connection.execute(select(jobs.c.job_id).where(jobs.c.job_id.in_(list(ids))))
            missing = set(ids) - {str(row[0]) for row in found}
            if missing:
                raise JobNotFound(ids[min(missing)])
            for columns, rows in groups.items():
                connection.execute(self._bulk_job_update(columns), rows)

        try:
            await self._run(work)
        except IntegrityError as exc:
            raise self._job_conflict(exc, {}) from None

    @staticmethod
    def _bulk_job_update(columns: Sequence[str]) -> Any:
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
        if "content_hash" in columns and "definition_version" not in columns:
            values["definition_version"] = case(
                (
                    and_(
                        bindparam("v_content_hash").is_not(None),
                        jobs.c.content_hash.is_distinct_from(bindparam("v_content_hash")),
                    ),
                    jobs.c.definition_version + 1,
                ),
                else_=jobs.c.definition_version,
            )
        return update(jobs).where(jobs.c.job_id == bindparam("k_job_id")).values(**values)

    def _job_update(self, job_id: str, changes: Mapping[str, Any]) -> Any:
        unknown = set(changes) - (JOB_COLUMNS - {"job_id", "created_at"})
        if unknown:
            raise unknown_columns("update_job()", unknown)
        canonical = canonical_id(job_id)
        if canonical is None:
            raise JobNotFound(job_id)
        values: dict[str, Any] = dict(changes)
        if "webhook_secret" in values:
            values["webhook_secret"] = self._encrypt(values["webhook_secret"])
        values.setdefault("updated_at", self._now())
        new_hash = changes.get("content_hash")
        if new_hash is not None and "definition_version" not in changes:
            values["definition_version"] = case(
                (
                    jobs.c.content_hash.is_distinct_from(new_hash),
                    jobs.c.definition_version + 1,
                ),
                else_=jobs.c.definition_version,
            )
        return update(jobs).where(jobs.c.job_id == canonical).values(**values).returning(*jobs.c)

    async def delete_job(self, job_id: str) -> None:
        canonical = canonical_id(job_id)
        if canonical is None:
            return
        statement = delete(jobs).where(jobs.c.job_id == canonical)
        await self._run(lambda connection: connection.execute(statement))

    # -- variables ------------------------------------------------------------------------

    async def set_variable(
        self, name: str, value: str, *, secret: bool, source: VariableSource | str
    ) -> None:
        row = {
            "name": name,
            "value": self._box.encrypt(value) if secret else value,
            "secret": secret,
            "source": VariableSource(source).value,
            "updated_at": self._now(),
        }
        statement = self._insert(variables).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=[variables.c.name],
            set_={k: v for k, v in row.items() if k != "name"},
        )
        await self._run(lambda connection: connection.execute(statement))

    async def get_variables(self, *, decrypt: bool = False) -> dict[str, VariableRecord]:
        rows = await self._rows(select(variables).order_by(variables.c.name))
        result: dict[str, VariableRecord] = {}
        for row in rows:
            value = row.value
            if row.secret:
                value = self._box.decrypt(value) if decrypt else MASK
            result[row.name] = VariableRecord(
                name=row.name,
                value=value,
                secret=row.secret,
                source=row.source,
                updated_at=row.updated_at,
            )
        return result

    async def delete_variable(self, name: str) -> bool:
        statement = delete(variables).where(variables.c.name == name)
        return await self._write_first(statement.returning(variables.c.name)) is not None

    async def replace_repo_variables(self, values: Mapping[str, str]) -> None:
        now = self._now()

        def work(connection: Connection) -> None:
            query = select(variables.c.name, variables.c.value, variables.c.source)
            current = {row.name: row for row in connection.execute(query).all()}
            stale = [
                name
                for name, row in current.items()
                if row.source == VariableSource.REPO and name not in values
            ]
            if stale:
                connection.execute(delete(variables).where(variables.c.name.in_(stale)))
            for name, value in values.items():
                row = current.get(name)
                if row is not None and (row.source == VariableSource.CLI or row.value == value):
                    continue
                fields = {"value": value, "secret": False, "source": "repo", "updated_at": now}
                statement = self._insert(variables).values(name=name, **fields)
                connection.execute(
                    statement.on_conflict_do_update(index_elements=[variables.c.name], set_=fields)
                )

        await self._run(work)

    # -- repository files -----------------------------------------------------------------

    async def list_repo_files(self) -> dict[str, RepoFileRecord]:
        rows = await self._rows(select(repo_files).order_by(repo_files.c.path))
        return {row.path: RepoFileRecord(**row._mapping) for row in rows}

    async def put_repo_file(self, path: str, content_hash: str, size: int) -> None:
        fields = {"content_hash": content_hash, "size": size, "updated_at": self._now()}
        statement = self._insert(repo_files).values(path=path, **fields)
        statement = statement.on_conflict_do_update(index_elements=[repo_files.c.path], set_=fields)
        await self._run(lambda connection: connection.execute(statement))

    async def delete_repo_file(self, path: str) -> None:
        statement = delete(repo_files).where(repo_files.c.path == path)
        await self._run(lambda connection: connection.execute(statement))

    # -- sync runs ------------------------------------------------------------------------

    async def start_sync(self, *, source: str, ref: str | None) -> str:
        sync_id = new_id()
        row: dict[str, Any] = {
            "sync_id": sync_id,
            "started_at": self._now(),
            "source": strip_credentials(source),
            "ref": ref,
            "status": SyncStatus.RUNNING.value,
            "errors": [],
        }
        row.update(dict.fromkeys(SYNC_COUNTS, 0))
        statement = sync_runs.insert().values(**row)
        await self._run(lambda connection: connection.execute(statement))
        return sync_id

    async def finish_sync(
        self,
        sync_id: str,
        *,
        status: SyncStatus | str,
        commit: str | None,
        counts: Mapping[str, int],
        errors: Sequence[Mapping[str, Any]],
        message: str | None,
    ) -> None:
        unknown = set(counts) - set(SYNC_COUNTS)
        if unknown:
            raise ValueError(f"unknown sync counts: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {
            "status": SyncStatus(status).value,
            "finished_at": self._now(),
            "commit": commit,
            "errors": jsonable(list(errors)),
            "message": message,
        }
        values.update({name: int(counts.get(name, 0)) for name in SYNC_COUNTS})
        canonical = canonical_id(sync_id)
        row = None
        if canonical is not None:
            statement = update(sync_runs).where(sync_runs.c.sync_id == canonical).values(**values)
            row = await self._write_first(statement.returning(sync_runs.c.sync_id))
        if row is None:
            raise SyncNotFound(sync_id)

    async def last_sync(self) -> SyncRecord | None:
        syncs = await self.list_syncs(limit=1)
        return syncs[0] if syncs else None

    async def list_syncs(self, limit: int = 20) -> list[SyncRecord]:
        query = select(sync_runs).order_by(sync_runs.c.started_at.desc()).limit(limit)
        return [SyncRecord(**row._mapping) for row in await self._rows(query)]
