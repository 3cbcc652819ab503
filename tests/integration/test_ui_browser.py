"""The dashboard in a real browser (Debian's chromium through Playwright) over a live
environment: real engine, registry and HAProxy.

- the overview shows what `dockroll status --json` says;
- a canary's timeline grows while it runs, without a reload;
- an abort from the page rolls the canary back and is audited with the token's actor;
- controls without a valid token are refused (401, 403).

chromium is installed by the test set-up when missing (`devenv.ensure_commands`).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
from playwright.sync_api import sync_playwright

from dockroll.devenv import ensure_commands
from dockroll.errors import DevEnvError
from dockroll.ledger import DeploymentStatus
from dockroll.pipeline.deploy import deploy_release
from dockroll.rollout.executor import RolloutOutcome
from dockroll.web import Tokens, create_app
from tests.conftest import IN_CI
from tests.integration.canary_support import PacedLoad, seed_releases
from tests.integration.rollout_support import (
    DOCKROLL,
    Seeded,
    cli_env,
    state_of,
    wait_serving,
)
from tests.unit.web.server import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STABLE, NEXT = "v1.0.0", "v1.1.0"
TOKEN = "ui-browser-test-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
# As root on a closed network: no sandbox, no GPU, no background connections.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The analysis measures every second but never decides (too few requests for its
# judges), so the 10 % step lasts its whole 45 s: time to watch and to abort it.
UNDECIDED = {
    "interval": "1s",
    "watch": "0s",
    "min_requests": 1000000,
    "min_sample": 0,
    "baseline": None,
    "sequential": {"enabled": False},
}
ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "live": {
        "strategy": "canary",
        "replicas": 1,
        "canary": {"steps": [10, 100], "pause": "45s"},
        "analysis": UNDECIDED,
    },
}


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        ensure_commands({"chromium": "chromium"})
    except DevEnvError as exc:
        if IN_CI:
            pytest.fail(f"chromium is needed for the browser tests: {exc}")
        pytest.skip(f"chromium is needed for the browser tests: {exc}")
    return CHROMIUM


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    del docker_client
    yield from seed_releases(
        tmp_path_factory, registry, ENVIRONMENTS, {STABLE: {}, NEXT: {}}, prefix="ui"
    )


@pytest.fixture(scope="module")
def site(seeded: Seeded) -> Iterator[str]:
    with state_of(seeded), seeded.ledger() as ledger:
        outcome = deploy_release(seeded.config(), "live", seeded.releases[STABLE], ledger)
        assert outcome is not None
        assert outcome.status == "succeeded"
        wait_serving(seeded.url("live"), STABLE)
        app = create_app(seeded.config(), Tokens({TOKEN: "ada"}), ledger_url=seeded.ledger_url)
        with serving(app) as base:
            yield base


@pytest.fixture
def page(chromium: str) -> Iterator[Any]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def _status_json(seeded: Seeded) -> dict[str, Any]:
    done = subprocess.run(
        [DOCKROLL, "--json", "status", "--env", "live"],
        env=cli_env(seeded), cwd=seeded.repo, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    environment: dict[str, Any] = json.loads(done.stdout)["environments"][0]
    return environment


def test_the_overview_shows_what_status_json_says(seeded: Seeded, site: str, page: Any) -> None:
    # A replica that just started reports "starting" until its first Docker check: compare
    # once the environment is settled, so both reads see the same state.
    deadline = time.monotonic() + 90
    status = _status_json(seeded)
    while any(r["health"] != "healthy" for r in status["replicas"]):
        assert time.monotonic() < deadline, status
        time.sleep(2)
        status = _status_json(seeded)
    page.goto(site + "/")
    section = page.locator('section[data-env="live"]')
    assert (
        section.locator('[data-field="ledger"]')
        .inner_text()
        .startswith(status["ledger"]["version"])
    )
    assert status["ledger"]["digest"].removeprefix("sha256:")[:12] in section.inner_text()
    assert section.locator('[data-field="lock"]').inner_text() == "free"
    assert section.locator('[data-field="unfinished"]').inner_text() == "none unfinished"
    assert status["replicas"], status
    for replica in status["replicas"]:
        row = section.locator(f'tr[data-replica="{replica["name"]}"]')
        assert row.locator('[data-field="version"]').inner_text() == replica["version"]
        digest = row.locator('[data-field="digest"] code').get_attribute("title")
        assert digest == replica["digest"]
        assert row.locator('[data-field="weight"]').inner_text() == str(replica["weight"])
        assert row.locator('[data-field="share"]').inner_text() == f"{replica['share']:.0%}"
        health = row.locator('[data-field="health"]').inner_text()
        assert health == f"{replica['state']}/{replica['health_summary']}"
    # The first stop of the keyboard is the skip link, then the page's navigation.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_controls_without_a_valid_token_are_refused(site: str, page: Any) -> None:
    page.goto(site + "/")
    page.get_by_role("button", name="pause live").click()
    page.wait_for_function(
        "document.getElementById('announce').textContent.includes('refused (401)')"
    )
    page.get_by_label("Control token").fill("not-the-token-at-all")
    page.get_by_label("Control token").dispatch_event("change")
    page.get_by_role("button", name="pause live").click()
    page.wait_for_function(
        "document.getElementById('announce').textContent.includes('refused (403)')"
    )
    wrong = httpx.post(
        site + "/api/environments/live/abort", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 403


def test_a_live_canary_timeline_grows_and_an_abort_from_the_page_rolls_it_back(
    seeded: Seeded, site: str, page: Any
) -> None:
    outcome: list[RolloutOutcome | None] = []
    failure: list[BaseException] = []

    def deploy() -> None:
        try:
            with state_of(seeded), seeded.ledger() as ledger:
                outcome.append(
                    deploy_release(seeded.config(), "live", seeded.releases[NEXT], ledger)
                )
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    with PacedLoad(seeded.url("live"), rate=40, threads=4) as load:
        load.wait_for(20)
        rollout = threading.Thread(target=deploy, name="ui-test-deploy")
        rollout.start()
        deployment_id = _await_samples(seeded)

        page.goto(f"{site}/deployments/{deployment_id}")
        page.evaluate("window.loadedOnce = true")
        rows = page.locator("#samples tr")
        first = rows.count()
        page.wait_for_function(
            f"document.querySelectorAll('#samples tr').length >= {first + 3}", timeout=20000
        )
        assert page.evaluate("window.loadedOnce") is True  # grown live, not reloaded
        assert page.locator("#chart-share polyline.canary").count() == 1
        stroke = page.evaluate(
            "getComputedStyle(document.querySelector('#chart-share polyline.canary')).stroke"
        )
        assert stroke not in ("", "none"), stroke  # drawn in the canary's colour, visible
        assert page.locator("#status").inner_text() == "running"
        share = rows.last.locator("td").nth(2).inner_text()
        assert abs(float(share.rstrip("%")) - 10.0) <= 0.5, share

        page.get_by_label("Control token").fill(TOKEN)
        page.get_by_label("Control token").dispatch_event("change")
        abort = page.get_by_role("button", name="abort live")
        abort.focus()
        page.keyboard.press("Enter")
        page.wait_for_function(
            "document.getElementById('announce').textContent.includes('abort live: succeeded')",
            timeout=150000,
        )
        rollout.join(60)
        assert not failure, failure
        settled = time.monotonic()
        load.wait_for(len(load.replies) + 40)
        assert load.versions(since=settled) == {STABLE: len(load.since(settled))}

    # The page that watched it says so too, live.
    page.wait_for_function("document.getElementById('status').textContent === 'aborted'")
    with seeded.ledger() as ledger:
        deployment = ledger.deployment(deployment_id)
        events = ledger.audit_events(env="live")
    assert deployment.status is DeploymentStatus.ABORTED
    assert deployment.traffic_seconds is not None
    assert deployment.traffic_seconds > 0
    aborts = [e for e in events if e.action == "abort" and e.outcome.value == "ok"]
    assert [e.actor for e in aborts] == ["ada (ui)"]
    assert aborts[0].detail["deployment"] == deployment_id
    assert any(e.action == "pause" and e.actor == "ada (ui)" for e in events)
    status = _status_json(seeded)
    assert status["serving"] == [seeded.releases[STABLE].digest]
    assert status["last_undone"]["deployment"] == deployment_id


def _await_samples(seeded: Seeded, timeout: float = 120.0) -> int:
    """The id of the running deployment, once its analysis recorded a measured tick."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with seeded.ledger() as ledger:
            running = ledger.unfinished_deployment(seeded.service, "live")
            if running is not None and any(
                s.detail.get("sampled") == "measured" for s in ledger.samples(running)
            ):
                return running.id
        time.sleep(0.5)
    raise AssertionError("the canary recorded no analysis sample in time")


def test_the_page_loads_nothing_from_elsewhere(site: str) -> None:
    for path in ("/", "/history", "/audit", "/report"):
        body = httpx.get(site + path).text
        assert "http://" not in body.replace("http://127.0.0.1", "")
        assert "https://" not in body
