"""The closed loop's nightly steps: decide the experiments that are live, then ask for
approval of tonight's new findings.

Deciding needs no approval (the approver agreed to the experiment and its rules); every
routing change is a new version of the Orchestrator's configuration, audited, announced by
an event in the outbox, and kept in the optimization's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from optimizer import telemetry
from optimizer.analysis.realized import realized_savings
from optimizer.pipeline.rollout import adopted_changes, apply_routing, guardrail_reading
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.rollout import plan
from optimizer.rollout.events import optimization_event, optimization_type
from optimizer.rollout.guardrails import judge
from optimizer.rollout.proposals import plan_proposals
from optimizer.schemas.analysis import ExperimentFinding
from optimizer.schemas.optimizations import LIVE, LoopSummary, Optimization, RealizedSavings
from optimizer.schemas.rollout import GuardrailReading, Guardrails, GuardrailVerdict

Decision = Literal["deploy", "stop", "roll_back", "continue"]


class ApprovalRuns(Protocol):
    """Where approval requests run: the orchestrator's rollout deployment."""

    def start(self, parameters: dict[str, Any], key: str) -> str | None:
        """The id of the run asking for approval; None when there is no rollout deployment."""

    def cancel(self, run_id: str, reason: str) -> None: ...


def decide(
    optimization: Optimization, finding: ExperimentFinding | None, verdict: GuardrailVerdict, now: datetime,
    max_days: float, started: datetime | None = None,
) -> tuple[Decision, str]:
    """What tonight's evidence says about a live experiment: a guardrail breach rolls it back;
    the always-valid analysis deploys the winner or stops a loser; it runs at most `max_days`."""
    if verdict.breaches:
        return "roll_back", "guardrails broken against control: " + "; ".join(verdict.breaches)
    if finding is not None:
        analysis = finding.analysis
        if analysis.recommendation == "deploy_to_production" and analysis.winner == "treatment":
            return "deploy", "; ".join(analysis.reasons) or "the treatment wins"
        if analysis.recommendation in {"keep_control", "invalid_srm"}:
            return "stop", "; ".join(analysis.reasons) or analysis.recommendation
    started = finding.definition.test_period.start if finding is not None else started
    if started is not None and now - started >= timedelta(days=max_days):
        return "stop", f"inconclusive after {max_days:g} days"
    return "continue", "not enough evidence yet"


def _readings(runtime: Runtime, optimization: Optimization, start: datetime, end: datetime
              ) -> tuple[dict[str, GuardrailReading], dict[str, GuardrailReading]]:
    """(control, treatment) over the same hours, from the Observatory."""
    app, experiment = optimization.application_id, optimization.experiment_id or ""
    with runtime.clients() as clients:
        control = guardrail_reading(clients, app, "baseline", start, end, variant=(experiment, "control"))
        treatment = guardrail_reading(clients, app, "canary", start, end, variant=(experiment, "treatment"))
    return {app: control}, {app: treatment}


def decide_experiments(
    runtime: Runtime, findings: Sequence[ExperimentFinding], window_end: datetime, *, max_days: float,
    guardrails: Guardrails, log: Log = LOG,
) -> dict[str, str]:
    """Deploy, stop, roll back or continue every optimization under experiment."""
    with runtime.warehouse() as store:
        live = store.optimizations.all("experimenting")
        # When each began on the platform's clock, as the Registry has it (also for an
        # experiment with no analysis yet).
        began = {e.experiment_id: e.test_period.start for e in store.reference.running_experiments()}
    by_experiment = {f.analysis.experiment_id: f for f in findings}
    decided: dict[str, str] = {}
    for optimization in live:
        finding = by_experiment.get(optimization.experiment_id or "")
        # Over the whole experiment so far: a percentile of one day's small arm is mostly noise.
        start = began.get(optimization.experiment_id or "") or window_end - timedelta(days=1)
        control, treatment = _readings(runtime, optimization, start, window_end)
        served = treatment[optimization.application_id].requests
        # Too little traffic to judge is no breach: the experiment waits for more.
        verdict = (judge(control, treatment, guardrails.accepting_delays_of(optimization.changes)) if served >= guardrails.min_requests else
                   GuardrailVerdict(healthy=False, unchecked=[f"only {served} treatment requests so far"]))
        decision, reason = decide(optimization, finding, verdict, window_end, max_days,
                                  began.get(optimization.experiment_id or ""))
        log.info("%s: %s (%s)", optimization.optimization_id, decision, reason)
        if decision == "continue":
            continue
        decided[optimization.optimization_id] = _conclude(runtime, optimization, finding, decision, reason)
    return decided


FINAL: dict[Decision, Literal["deployed", "stopped", "rolled_back"]] = {
    "deploy": "deployed", "stop": "stopped", "roll_back": "rolled_back"}


def _conclude(runtime: Runtime, optimization: Optimization, finding: ExperimentFinding | None, decision: Decision,
              reason: str, actor: str = "nightly-analysis") -> str:
    status = FINAL[decision]
    with runtime.clients() as clients:
        current = clients.orchestrator.routing()
        if decision == "deploy":
            config = plan.promote_experiment(current, optimization.optimization_id)
        elif optimization.status == "deployed":  # undo a deployment: the application's rule as it was before
            before = next((v for v in clients.orchestrator.routing_history()
                           if v.version == optimization.previous_version), None)
            config = plan.revert(current, before, optimization.application_id, optimization.optimization_id)
        else:
            config = plan.end_experiment(current, optimization.optimization_id)
    version = f"{optimization.optimization_id}-{status.replace('_', '-')}"
    apply_routing(runtime, config, version)
    if finding is not None:
        conclusion = {"deployed": "Successful", "stopped": "Inconclusive" if "inconclusive" in reason else "Failed",
                      "rolled_back": "Failed"}[status]
        with runtime.clients() as clients:
            clients.registry.record_experiment(finding.definition.model_copy(update={
                "status": "completed" if status == "deployed" else "failed" if status == "rolled_back" else "stopped",
                "conclusion": f"{conclusion} - {reason}"}))
    now = datetime.now(UTC)
    moved = optimization.moved(status, reason, now, ended_at=now)
    with runtime.warehouse() as store:
        store.optimizations.save([moved])
        store.outbox.queue([optimization_event(moved, finding.analysis if finding else None, version, now,
                                                 finding.usage if finding else None)])
        store.audit.record(actor, status, f"optimization/{optimization.optimization_id}",
                           {"version": version, "reason": reason, "experiment_id": optimization.experiment_id})
    return f"{status} as routing version {version}"


def stop_optimization(runtime: Runtime, optimization_id: str, reason: str, *, actor: str, log: Log = LOG) -> str:
    """Roll a live optimization back at once: stopping needs no approval, only an audit entry.
    Anything else about it (unknown, already ended) is said, not done."""
    with runtime.warehouse() as store:
        optimization = store.optimizations.get(optimization_id)
    if optimization is None:
        return f"no optimization {optimization_id}: nothing to stop"
    if optimization.status not in LIVE:
        return f"{optimization_id} is {optimization.status}: nothing to stop"
    done = _conclude(runtime, optimization, None, "roll_back", f"stopped by {actor}: {reason}", actor=actor)
    log.info("%s %s", optimization_id, done)
    return f"{optimization_id} {done}"


def measure_realized(
    runtime: Runtime, run_id: str, window_end: datetime, *, alpha: float, baseline_days: float = 7.0, log: Log = LOG,
) -> list[RealizedSavings]:
    """What every deployed change has saved so far, against its forecast; kept with tonight's
    date, so the forecast error of every night stays on record."""
    found = []
    with runtime.warehouse() as store:
        for optimization in store.optimizations.all("deployed"):
            before, after = store.realized.served(optimization.application_id, optimization.optimization_id,
                                                  baseline_days)
            result = realized_savings(optimization.optimization_id, optimization.application_id, before, after,
                                      optimization.forecast_monthly_savings_usd, alpha)
            if result is not None:
                found.append(result)
                if result.realized_monthly_tokens_saved and result.realized_monthly_tokens_saved > 0:
                    telemetry.record_token_savings(
                        optimization_type=optimization_type(optimization.changes),
                        application=optimization.application_id, tokens=result.realized_monthly_tokens_saved,
                        kind="realized")
        store.realized.record(run_id, window_end, found)
    for r in found:
        log.info("%s realized %.2f USD a month (forecast %.2f)", r.optimization_id, r.realized_monthly_savings_usd,
                 r.forecast_monthly_savings_usd)
    return found


def propose_changes(
    runtime: Runtime, run_id: str, runs: ApprovalRuns, *, experiment_percent: float, approval_timeout_s: int,
    max_quality_drop: float, log: Log = LOG,
) -> LoopSummary:
    """One approval request per application with a new adopted change (see
    `optimizer.rollout.proposals`), and another try for requests that found no rollout
    deployment to run through before."""
    summary = LoopSummary()
    now = datetime.now(UTC)
    with runtime.warehouse() as store:
        known = store.optimizations.all()
    proposals = plan_proposals(adopted_changes(runtime, run_id=run_id), known, run_id=run_id, now=now)
    summary.skipped = proposals.skipped
    for old in proposals.superseded:
        if old.approval_run_id:
            runs.cancel(old.approval_run_id, old.reason)
        summary.superseded.append(old.optimization_id)
    unasked = [o for o in known if o.status == "waiting_approval" and o.approval_run_id is None
               and o.optimization_id not in summary.superseded]
    asked = []
    for optimization in [*unasked, *proposals.new]:
        run_id_started = runs.start({
            "changes": [c.model_dump(mode="json") for c in optimization.changes],
            "requested_by": optimization.proposed_by, "optimization_id": optimization.optimization_id,
            "experiment_percent": experiment_percent, "approval_timeout_s": approval_timeout_s,
            "max_quality_drop": max_quality_drop,
        }, key=optimization.optimization_id)
        if run_id_started is None:
            summary.waiting_for_deployment.append(optimization.optimization_id)
            asked.append(optimization)
            continue
        summary.proposed.append(optimization.optimization_id)
        asked.append(optimization.model_copy(update={"approval_run_id": run_id_started}))
    with runtime.warehouse() as store:
        store.optimizations.save([*proposals.superseded, *asked])
        for optimization in proposals.superseded:
            store.audit.record("nightly-analysis", "superseded", f"optimization/{optimization.optimization_id}",
                               {"reason": optimization.reason})
    log.info("approval asked for %d change(s), %d superseded, %d without a rollout deployment yet; skipped: %s",
             len(summary.proposed), len(summary.superseded), len(summary.waiting_for_deployment),
             summary.skipped or "none")
    return summary
