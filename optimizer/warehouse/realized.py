"""Realized savings: the traffic a deployed change served against its application's traffic
before, and every night's measurement kept."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import duckdb

from optimizer.analysis.realized import ServedTraffic
from optimizer.analysis.statistics import SampleMean
from optimizer.schemas.optimizations import RealizedSavings

_STATISTICS = """
    count(*), greatest(epoch(max(ts)) - epoch(min(ts)), 3600) / 86400,
    fsum(cost_usd), fsum(cost_usd * cost_usd), fsum(latency_ms), fsum(latency_ms * latency_ms),
    count(quality_score), fsum(quality_score), fsum(quality_score * quality_score), fsum(prompt_tokens)
"""


def _traffic(row: tuple[Any, ...] | None) -> ServedTraffic:
    if row is None or not row[0]:
        empty = SampleMean(0, float("nan"), float("nan"))
        return ServedTraffic(0, 0.0, empty, empty, empty)
    n, days, cost, cost2, latency, latency2, scored, quality, quality2, prompt = row
    return ServedTraffic(int(n), float(days), SampleMean.from_sums(int(n), float(cost), float(cost2)),
                         SampleMean.from_sums(int(n), float(latency), float(latency2)),
                         SampleMean.from_sums(int(scored), float(quality or 0), float(quality2 or 0)),
                         float(prompt) / int(n))


class Realized:
    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def served(self, application_id: str, optimization_id: str, baseline_days: float
               ) -> tuple[ServedTraffic, ServedTraffic]:
        """(the application's requests in the `baseline_days` before the optimization first
        served any, those it served since its deployment): no shadow calls, no experiment."""
        first = self._db.execute("SELECT min(ts) FROM requests WHERE optimization_id = $o",
                                 {"o": optimization_id}).fetchone()
        if first is None or first[0] is None:
            return _traffic(None), _traffic(None)
        start: datetime = first[0]
        before = self._db.execute(
            f"""SELECT {_STATISTICS} FROM requests
                WHERE application_id = $a AND optimization_id IS NULL AND experiment_id IS NULL AND NOT shadow
                  AND ts >= $from AND ts < $to""",
            {"a": application_id, "from": start - timedelta(days=baseline_days), "to": start}).fetchone()
        after = self._db.execute(
            f"""SELECT {_STATISTICS} FROM requests
                WHERE optimization_id = $o AND variant_id IS NULL AND NOT shadow""",
            {"o": optimization_id}).fetchone()
        return _traffic(before), _traffic(after)

    def record(self, run_id: str, measured_until: datetime, results: Sequence[RealizedSavings]) -> None:
        for r in results:
            self._db.execute(
                "INSERT OR REPLACE INTO realized_savings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, measured_until, r.optimization_id, r.application_id, r.realized_monthly_savings_usd,
                 r.forecast_monthly_savings_usd, r.forecast_error_usd, r.model_dump_json()])

    def history(self) -> list[tuple[date, float, float]]:
        """Per night measured: (day, realized, forecast) monthly savings of every deployed change."""
        rows = self._db.execute(
            """SELECT CAST(measured_until AS DATE) AS day, fsum(realized_monthly_savings_usd),
                      fsum(forecast_monthly_savings_usd)
               FROM realized_savings GROUP BY day ORDER BY day""").fetchall()
        return [(day, float(realized), float(forecast)) for day, realized, forecast in rows]
