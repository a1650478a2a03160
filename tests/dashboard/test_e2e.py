"""End to end: ``vecron up`` as a user runs it, and the dashboard in headless Chromium.

One browser session logs in with a token made by ``vecron token create``, triggers a
job and watches it finish without reloading the page (Server-Sent Events), opens its
Job Context (a secret masked), downloads an output file, builds a job in the builder
and validates the downloaded file with ``vecron validate``. Every page is kept as a
screenshot under ``.artifacts/dashboard/`` (the test prints where).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.dashboard.browser import CHROMIUM_ARGS, artifacts, chromium_path
from tests.runtime.http_target import HttpTarget, free_port, serve_http_target

SECRET = "tok-literal-123"

JOB = """\
name: slow-report
description: Waits, echoes with a token, writes a CSV
variables:
  API_TOKEN: {secret}
  TARGET: {target}
steps:
  - id: wait
    type: http
    config: {{url: "${{TARGET}}/slow", query: {{seconds: "2"}}}}
  - id: echo
    type: http
    config:
      url: "${{TARGET}}/echo"
      headers: {{X-Api-Token: "${{API_TOKEN}}"}}
      query: {{status: "{{{{steps.wait.output.status}}}}"}}
  - id: rows
    type: database
    config:
      database_type: sqlite
      connection_string: "sqlite:///{db}?create=true"
      query: "SELECT 'alpha' AS name, 1 AS n UNION ALL SELECT 'beta', 2"
  - id: csv
    type: file_processing
    config:
      operation: write
      format: csv
      destination_path: rows.csv
      data_source: "{{{{steps.rows.output.rows}}}}"
"""


@dataclass
class Vecron:
    url: str
    env: dict[str, str]
    token: str
    viewer_token: str
    target: str
    process: subprocess.Popen[str]

    def stop(self) -> tuple[str, float]:
        """SIGTERM, as a user's Ctrl-C: its output and how long it took to stop."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            out, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a hang on shutdown is a failure of its own
            self.process.kill()
            out, err = self.process.communicate()
            pytest.fail(f"vecron up did not stop within 30 s of SIGTERM: {err[-2000:]}")
        assert self.process.returncode == 0, err[-3000:]
        return out, time.monotonic() - started


def vecron(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vecron", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    with serve_http_target() as served:
        yield served


@pytest.fixture
def running(tmp_path: Path, target: HttpTarget) -> Iterator[Vecron]:
    repo = tmp_path / "repo"
    (repo / "jobs").mkdir(parents=True)
    text = JOB.format(secret=SECRET, target=target.base_url, db=tmp_path / "rows.db")
    (repo / "jobs" / "slow-report.yaml").write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECRON_")}
    env["VECRON_HOME"] = str(tmp_path / "home")
    env["VECRON_SECRET_KEY"] = "e2e"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "vecron", "up", str(repo), "--port", str(port), "--grace", "5s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _synced(url, env):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "vecron up never served the job"
            time.sleep(0.3)
        made = vecron(env, "token", "create", "e2e-admin", "--role", "admin")
        assert made.returncode == 0, made.stderr
        viewer = vecron(env, "token", "create", "e2e-viewer", "--role", "viewer")
        assert viewer.returncode == 0, viewer.stderr
        yield Vecron(url, env, made.stdout.strip(), viewer.stdout.strip(), target.base_url, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _synced(url: str, env: dict[str, str]) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
    except httpx.HTTPError:
        return False
    jobs = vecron(env, "jobs", "--format", "json")
    return jobs.returncode == 0 and "slow-report" in jobs.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_dashboard_end_to_end(running: Vecron, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = artifacts()
    print(f"\nscreenshots: {shots}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                accept_downloads=True, viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # The login: a page behind it sends you there and back.
            page.goto(f"{running.url}/ui/executions")
            expect(page).to_have_url(f"{running.url}/ui/login?next=%2Fui%2Fexecutions")
            page.screenshot(path=shots / "01-login.png", full_page=True)
            page.fill("input[name=token]", "vcr_" + "x" * 43)
            page.click("button[type=submit]")
            expect(page.locator("[role=alert]")).to_contain_text("unknown or was revoked")
            page.fill("input[name=token]", running.token)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{running.url}/ui/executions")

            # The jobs page.
            page.click("nav >> text=Jobs")
            row = page.locator("tr[data-job=slow-report]")
            expect(row).to_contain_text("no schedule")
            page.screenshot(path=shots / "02-jobs.png", full_page=True)

            # Trigger it and watch it finish live: no reload on the execution page.
            row.locator("a", has_text="slow-report").click()
            expect(page.locator("h1")).to_have_text("slow-report")
            page.screenshot(path=shots / "03-job.png", full_page=True)
            page.fill("textarea[name=variables]", json.dumps({"TARGET": running.target}))
            page.click("#run-form button[type=submit]")
            expect(page).to_have_url(re.compile(r"/ui/executions/[0-9a-f-]{36}$"))
            page.evaluate("window.__stayed = true")
            status = page.locator("#execution-status")
            expect(status).to_have_attribute("data-status", "running", timeout=30_000)
            page.screenshot(path=shots / "04-execution-running.png", full_page=True)
            expect(status).to_have_attribute("data-status", "succeeded", timeout=60_000)
            assert page.evaluate("window.__stayed") is True, "the page reloaded"
            expect(page.locator(".timeline .step")).to_have_count(4)

            # The context: collapsible, secrets masked; the output file downloads.
            variables = page.locator("details[data-section=variables]")
            variables.locator("summary").click()
            expect(variables.locator("pre")).to_contain_text("(sensitive)")
            body = page.content()
            assert SECRET not in body
            page.screenshot(path=shots / "05-execution-context.png", full_page=True)
            with page.expect_download() as download_info:
                page.click("ul.files a")
            saved = tmp_path / "rows.csv"
            download_info.value.save_as(saved)
            assert "alpha" in saved.read_text()

            # Executions, filtered; the sync page with its pending plan.
            page.goto(f"{running.url}/ui/executions?job=slow-report&status=succeeded")
            expect(page.locator("tr[data-status=succeeded]")).to_have_count(1)
            page.screenshot(path=shots / "06-executions.png", full_page=True)
            page.goto(f"{running.url}/ui/sync")
            page.click("text=Compute what a sync would change now")
            expect(page.locator("pre.plan")).to_contain_text("no changes")
            page.screenshot(path=shots / "07-sync.png", full_page=True)

            _build_a_job(page, running, tmp_path, shots)
            assert errors == [], errors

            # A phone: the same pages, one column.
            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            _log_in(phone.new_page(), running, running.viewer_token).screenshot(
                path=shots / "10-jobs-phone.png", full_page=True
            )
            # Without JavaScript: read-only pages render, <details> opens natively.
            plain = browser.new_context(java_script_enabled=False)
            plain_page = _log_in(plain.new_page(), running, running.viewer_token)
            expect(plain_page.locator("tr[data-job=slow-report]")).to_be_visible()
            assert plain_page.locator("text=Run now").count() == 0  # a viewer cannot
            plain_page.goto(f"{running.url}/ui/executions")
            plain_page.locator("tr[data-status=succeeded] a").first.click()
            steps = plain_page.locator("details[data-section=steps]")
            expect(steps).to_have_attribute("open", "")
            plain_page.screenshot(path=shots / "11-execution-no-js.png", full_page=True)
            # The builder without JavaScript: Validate re-renders, Download downloads.
            plain_page.goto(f"{running.url}/ui/builder")
            plain_page.fill("input[name=name]", "plain-job")
            plain_page.click("button[value=preview]")
            expect(plain_page.locator("#output")).to_contain_text("name: plain-job")
            with plain_page.expect_download() as plain_download:
                plain_page.click("#download")
            plain_file = tmp_path / "plain" / "plain-job.yaml"
            plain_download.value.save_as(plain_file)
            checked = vecron(running.env, "validate", str(plain_file))
            assert checked.returncode == 0, checked.stdout + checked.stderr

            # Pages with a live stream open do not hold up the shutdown.
            page.goto(f"{running.url}/ui/")
            expect(page.locator("tr[data-job=slow-report]")).to_be_visible()
            out, took = running.stop()
            assert "vecron: stopped" in out
            assert took < 15, f"vecron up took {took:.1f} s to stop with pages open"
        finally:
            browser.close()


def _log_in(page: object, running: Vecron, token: str) -> object:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{running.url}/ui/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{running.url}/ui/")
    return page


def _build_a_job(page: object, running: Vecron, tmp_path: Path, shots: Path) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(f"{running.url}/ui/builder")
    page.fill("input[name=name]", "nightly-export")
    page.fill("input[name=schedule_expression]", "0 30 1 * * ?")
    expect(page.locator("#schedule-preview")).to_contain_text("at 01:30:00")
    expect(page.locator("#schedule-preview li")).to_have_count(5)
    page.fill("input[name=step-0-url]", "https://example.com/export")
    # A second step, of another type, reading the first one's output.
    page.select_option("select[name=new_step_type]", "database")
    page.click("#add-step")
    expect(page.locator("fieldset.step")).to_have_count(2)
    page.fill("input[name=step-1-connection_string]", "sqlite:///exports.db?create=true")
    page.fill("textarea[name=step-1-query]", "INSERT INTO exports (status) VALUES (:status)")
    page.fill("textarea[name=step-1-parameters]", "status: ")
    page.select_option("select.ref-picker[data-step='1']", "{{steps.fetch.output.status}}")
    expect(page.locator("textarea[name=step-1-parameters]")).to_have_value(
        'status: "{{steps.fetch.output.status}}"'
    )
    expect(page.locator("#output")).to_contain_text("{{steps.fetch.output.status}}")
    expect(page.locator("#validation")).to_have_attribute("data-valid", "true")
    page.screenshot(path=shots / "08-builder.png", full_page=True)
    # A broken reference: the validator's own message, at file:line:col.
    page.fill("input[name=step-0-id]", "fetched")
    expect(page.locator("#validation")).to_have_attribute("data-valid", "false")
    expect(page.locator("ul.diagnostics")).to_contain_text("nightly-export.yaml:")
    page.screenshot(path=shots / "09-builder-invalid.png", full_page=True)
    page.fill("input[name=step-0-id]", "fetch")
    expect(page.locator("#validation")).to_have_attribute("data-valid", "true")

    with page.expect_download() as download_info:
        page.click("#download")
    produced = tmp_path / "built" / download_info.value.suggested_filename
    produced.parent.mkdir()
    download_info.value.save_as(produced)
    assert produced.name == "nightly-export.yaml"
    checked = vecron(running.env, "validate", str(produced))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Export as JSON, import it back: the same job.
    with page.expect_download() as export_info:
        page.click("#export")
    exported = tmp_path / "built" / "export.json"
    export_info.value.save_as(exported)
    data = json.loads(exported.read_text())
    assert data["metadata"]["exported_by"] == "e2e-admin"
    page.goto(f"{running.url}/ui/builder")
    page.set_input_files("#import-file", str(exported))
    expect(page.locator("#import-text")).not_to_have_value("")
    page.click("#import-form button[type=submit]")
    expect(page.locator("input[name=name]")).to_have_value("nightly-export")
    expect(page.locator("#validation")).to_have_attribute("data-valid", "true")
    without = {k: v for k, v in data.items() if k not in ("metadata", "placeholders")}
    assert json.loads(page.locator("#output").inner_text()) == without
