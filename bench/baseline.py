"""The baseline: the same aggregations and tests written plainly with pandas and scipy.

What an analyst would write without sufficient statistics: read every row into a
DataFrame, filter and deduplicate it, and run each test on the raw arrays.
`python -m bench.baseline --data FILE` prints one JSON object of timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from optimizer.analysis.compression import FLOOR_GRID

COLUMNS = ["request_id", "ts", "application_id", "model", "prompt_tokens", "completion_tokens", "cost_usd",
           "latency_ms", "status", "quality_score", "experiment_id", "variant_id", "pair_id", "shadow",
           "confidence_score", "compression_technique", "original_prompt_tokens"]


def load(data: Path) -> pd.DataFrame:
    frame = pd.read_parquet(data, columns=COLUMNS)
    valid = (
        frame["request_id"].notna() & frame["model"].notna() & (frame["prompt_tokens"] >= 0)
        & (frame["completion_tokens"] >= 0) & (frame["cost_usd"] >= 0) & (frame["latency_ms"] >= 0)
        & frame["status"].isin(["ok", "error"])
        & (frame["quality_score"].isna() | frame["quality_score"].between(0, 1))
    )
    return frame[valid].drop_duplicates("request_id")


def experiments(frame: pd.DataFrame) -> int:
    tests = 0
    served = frame[frame["experiment_id"].notna() & ~frame["shadow"]]
    for _, experiment in served.groupby("experiment_id"):
        control = experiment[experiment["variant_id"] == "control"]
        stats.chisquare(experiment["variant_id"].value_counts().to_numpy())
        for variant, arm in experiment.groupby("variant_id"):
            if variant == "control":
                continue
            for metric in ("cost_usd", "latency_ms", "quality_score"):
                stats.ttest_ind(arm[metric].dropna(), control[metric].dropna(), equal_var=False)
                tests += 1
            errors = [(arm["status"] == "error").sum(), (control["status"] == "error").sum()]
            proportions_ztest(errors, [len(arm), len(control)])
            tests += 1
    return tests


def cascades(frame: pd.DataFrame) -> int:
    served = frame[~frame["shadow"]]
    current = served.groupby(["application_id", "model"]).size().reset_index(name="n")
    current = current.sort_values("n", ascending=False).drop_duplicates("application_id")
    paired = frame[frame["pair_id"].notna()]
    fallback = paired.merge(current[["application_id", "model"]], on=["application_id", "model"])
    pairs = fallback.merge(paired, on="pair_id", suffixes=("_f", "_c"))
    pairs = pairs[(pairs["model_f"] != pairs["model_c"]) & pairs["quality_score_f"].notna()]
    intervals = 0
    for _, group in pairs.groupby(["application_id_f", "model_c"]):
        diff = (group["quality_score_c"] - group["quality_score_f"]).fillna(0.0).to_numpy()
        confidence = group["confidence_score_c"].fillna(-1.0).to_numpy()
        for step in range(101):
            kept = np.where(confidence >= step / 100, diff, 0.0)
            stats.t.interval(0.95, len(kept) - 1, loc=kept.mean(), scale=stats.sem(kept))
            (group["cost_usd_c"] + np.where(confidence < step / 100, group["cost_usd_f"], 0.0)).mean()
            intervals += 1
    return intervals


def compression(frame: pd.DataFrame) -> int:
    compressed = frame["compression_technique"].notna()
    tests = 0
    for (_, _), group in frame[~frame["shadow"]].groupby(["application_id", "model"]):
        arm = compressed.loc[group.index]
        if arm.all() or not arm.any():
            continue
        original = group["original_prompt_tokens"].fillna(group["prompt_tokens"])
        for floor in FLOOR_GRID:
            above = original >= floor
            stats.ttest_ind(group.loc[above & arm, "quality_score"].dropna(),
                            group.loc[above & ~arm, "quality_score"].dropna(), equal_var=False)
            tests += 1
    return tests


ANALYSES = {"cascade": cascades, "compression": compression, "experiments": experiments}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--only", choices=sorted(ANALYSES),
                        help="read the file and run this analysis alone, as an analyst's one-off script would")
    args = parser.parse_args()
    # Small groups give NaN statistics and warnings, as they would for the analyst; not news here.
    warnings.simplefilter("ignore")
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    frame = load(args.data)
    timings["load_s"] = time.perf_counter() - started
    for name, step in ANALYSES.items():
        if args.only and name != args.only:
            continue
        started = time.perf_counter()
        step(frame)
        timings[f"{name}_s"] = time.perf_counter() - started
    timings["rows"] = len(frame)
    json.dump(timings, sys.stdout)


if __name__ == "__main__":
    main()
