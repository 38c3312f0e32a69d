"""The approval form as a person meets it: a real Prefect server with its UI, a rollout paused
at its approval gate, and headless Chromium answering the form, first as someone who is not
an approver, then as one. Screenshots of every step are kept in test-artifacts/approval-ui/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, sync_playwright

from optimizer.sandbox import SandboxServer
from optimizer.schemas.rollout import Guardrails, ProposedChange
from tests.conftest import (
    CHROMIUM_FLAGS,
    child_environment,
    copy_prefect_home,
    sandbox_config,
    settings_for,
)
from tests.process_tree import prefect_server
from tests.test_rollout import CASCADE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# This test is about what a person sees, not about guardrails: the canary of unchanged sandbox
# traffic is promoted whatever noise a busy machine's clock adds to its latency.
TOLERANT = Guardrails(max_error_rate_increase=1.0, max_p95_latency_increase_pct=1000.0, max_quality_drop=1.0)
SCREENSHOTS = ROOT / "test-artifacts" / "approval-ui"

COMPRESSION = ProposedChange(
    application_id="doc-qa", kind="prompt_compression", team_id="team-research", technique="llmlingua",
    min_prompt_tokens=800, monthly_savings_usd=272.08, quality_change=-0.004, quality_change_ci=(-0.009, 0.001),
    reason="compressed prompts answer as well on the shadow pairs",
)

# Runs in a child process against the UI's server: a rollout that Governance blocks (so the
# run list shows a second outcome) next to one of two changes that waits for approval.
ROLLOUTS = """
import json, sys, threading
from flows.rollout import outcome_of, rollout
from optimizer.schemas.rollout import Guardrails, ProposedChange

def run(changes, **options):
    state = rollout(changes=[ProposedChange.model_validate(c) for c in json.loads(changes)], requested_by="ui-test",
                    return_state=True, **options)
    outcome = outcome_of(state)
    print(json.dumps({"status": outcome.status, "rollout_id": outcome.rollout_id}), flush=True)

blocked = threading.Thread(target=run, args=(sys.argv[2],))
blocked.start()
run(sys.argv[1], approval_poll_s=1, watch_minutes=15, guardrails=Guardrails.model_validate_json(sys.argv[3]))
blocked.join()
"""


def as_json(*changes: ProposedChange) -> str:
    return json.dumps([c.model_dump(mode="json") for c in changes])


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the process group, SIGKILL after 10 s: nothing outlives the test."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def prefect_ui(tmp_path_factory: pytest.TempPathFactory, migrated_prefect_home: Path) -> Iterator[str]:
    """`prefect server start` with its UI and a PREFECT_HOME of its own (the test harness's
    server serves no UI); yields its address."""
    folder = tmp_path_factory.mktemp("prefect-ui")
    # As a real server runs: with the services that record task runs and events for the UI.
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "true",
           "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "true"}
    env.pop("PREFECT_API_URL", None)
    with prefect_server(copy_prefect_home(migrated_prefect_home, folder), env, folder / "server.log") as address:
        yield address


def _flow_runs(api: str, flow: str, **filters: Any) -> list[dict[str, Any]]:
    body = {"flows": {"name": {"any_": [flow]}}, "flow_runs": filters, "sort": "START_TIME_DESC"}
    response = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs


def paused_gate(api: str, timeout: float = 120) -> dict[str, Any]:
    """The approval gate's run once it is paused and its form is saved (just after the pause)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in _flow_runs(api, "approval-gate", state={"type": {"any_": ["PAUSED"]}}):
            key = f"paused-{run['state']['state_details']['pause_key']}-schema"
            if httpx.get(f"{api}/flow_runs/{run['id']}/input/{key}", timeout=10).status_code == 200:
                return run
        time.sleep(0.5)
    raise AssertionError("no approval gate was paused")


def state_of(api: str, run_id: str) -> str:
    return str(httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"]["type"])


def shot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def field(form: Locator, label: str) -> Locator:
    return form.locator(".schema-form-property").filter(
        has=form.page.locator(".schema-form-property__label", has_text=label)).first


def choose(form: Locator, label: str, option: str) -> None:
    """Pick an option of a select field as a keyboard user does (it opens on arrow down)."""
    field(form, label).locator(".p-select-button__control").focus()
    form.page.keyboard.press("ArrowDown")
    form.page.get_by_role("option", name=option, exact=True).click()


def open_form(page: Page, url: str, run_id: str) -> Locator:
    page.goto(f"{url}/runs/flow-run/{run_id}")
    page.get_by_role("button", name="Resume").click()
    form = page.get_by_role("dialog")
    form.get_by_role("button", name="Submit").wait_for()
    return form


def tables_fit(page: Page) -> list[str]:
    """The markdown tables on the page that are wider than their place (scrolled or clipped)."""
    clipped: list[str] = page.evaluate("""() => [...document.querySelectorAll('.markdown-renderer__table')]
        .filter(t => t.scrollWidth > t.clientWidth + 1
                  || t.getBoundingClientRect().right > t.closest('.markdown-renderer').getBoundingClientRect().right + 1)
        .map(t => t.innerText.split('\\n')[0])""")
    return clipped


def test_a_person_answers_the_approval_form_in_the_prefect_ui(
    prefect_ui: str, chromium: str, tmp_path: Path
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    api = f"{prefect_ui}/api"
    outside_eu = CASCADE.model_copy(update={"primary_model": "claude-3-5-haiku-20241022"})
    with SandboxServer(sandbox_config(requests_per_day=30_000, clock_speed=240)) as sandbox:
        settings = settings_for(sandbox, tmp_path, approvers=["alice", "bob"])
        env = {**child_environment(settings), "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect")}
        with (tmp_path / "rollouts.log").open("w") as log, (tmp_path / "outcomes.jsonl").open("w") as out:
            rollouts = subprocess.Popen(
                [sys.executable, "-c", ROLLOUTS, as_json(CASCADE, COMPRESSION), as_json(outside_eu),
                 TOLERANT.model_dump_json()], cwd=ROOT, env=env, stdout=out, stderr=log, start_new_session=True)
        try:
            gate = paused_gate(api)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    answer_the_form(page, prefect_ui, gate)
                    rollouts.wait(120)
                    outcomes = [json.loads(line) for line in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
                    assert sorted(o["status"] for o in outcomes) == ["applied", "blocked"], outcomes
                    promoted = next(o["rollout_id"] for o in outcomes if o["status"] == "applied")
                    check_the_run_list(page, prefect_ui)
                    check_the_artifacts(page, prefect_ui, promoted)
                finally:
                    browser.close()
        finally:
            stop(rollouts)
            assert rollouts.returncode is not None
    assert rollouts.returncode == 0, (tmp_path / "rollouts.log").read_text()[-3000:]


def answer_the_form(page: Page, url: str, gate: dict[str, Any]) -> None:
    assert str(gate["name"]).startswith("approve-doc-qa+support-bot-20")
    page.goto(f"{url}/runs/flow-run/{gate['id']}")
    page.get_by_role("button", name="Resume").wait_for()
    shot(page, "01-paused-gate")

    form = open_form(page, url, gate["id"])
    shot(page, "02-form")
    text = form.inner_text()
    # The approvers come first, before the change and the fields; both choices are required
    # and start empty (the UI marks optional fields "(Optional)", as it does the comment).
    assert text.index("Approvers: alice, bob.") < text.index("Routing change") < text.index("Decision")
    labels = form.locator(".schema-form-property__label").all_inner_texts()
    assert labels == ["Decision", "Approver", "Comment (Optional)"], labels
    for label in ("Decision", "Approver"):
        assert field(form, label).locator(".p-select-button__value").inner_text().strip() == ""
    assert form.get_by_role("link", name="rollout-").get_attribute("href", timeout=5000)

    # Someone not on the list types their own name: refused, with the reason, and still paused.
    choose(form, "Decision", "approve")
    approver = field(form, "Approver")
    approver.locator(".schema-form-property-menu button").click()
    page.get_by_text("Use JSON input").click()
    approver.locator("textarea").fill('"mallory"')
    form.get_by_role("button", name="Submit").click()
    form.get_by_text("'mallory' is not one of ['alice', 'bob']").wait_for()
    shot(page, "03-non-approver-refused")
    assert state_of(f"{url}/api", gate["id"]) == "PAUSED"

    form.get_by_role("button", name="Close").click()
    form = open_form(page, url, gate["id"])
    choose(form, "Decision", "approve")
    choose(form, "Approver", "alice")
    field(form, "Comment").locator("textarea").fill("shadow pairs look good")
    shot(page, "04-approver-answers")
    form.get_by_role("button", name="Submit").click()
    page.get_by_text("Flow run resumed").first.wait_for()
    shot(page, "05-resumed")


def check_the_run_list(page: Page, url: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 1200})  # the chart, then every run
    page.goto(f"{url}/runs")
    rows = page.locator(".flow-run-list-item")
    promoted = rows.filter(has=page.locator(".state-badge", has_text="Promoted"))
    blocked = rows.filter(has=page.locator(".state-badge", has_text="Blocked by policy"))
    promoted.first.wait_for()
    shot(page, "06-run-list")
    assert "rollout-doc-qa+support-bot-20" in promoted.first.inner_text()
    assert "state--completed" in str(promoted.first.locator(".state-badge").get_attribute("class"))
    assert "state--failed" in str(blocked.first.locator(".state-badge").get_attribute("class"))


def artifact_id(api: str, key: str) -> str:
    response = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}}, timeout=10)
    (artifact,) = response.json()
    return str(artifact["id"])


def check_the_artifacts(page: Page, url: str, rollout_id: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    for kind in ("evidence", "result"):
        page.goto(f"{url}/artifacts/artifact/{artifact_id(f'{url}/api', f'rollout-{rollout_id}-{kind}')}")
        page.locator(".markdown-renderer__table").first.wait_for()
        shot(page, f"07-{kind}-artifact")
        assert tables_fit(page) == [], f"the {kind} artifact's tables are clipped at 1280 px"
