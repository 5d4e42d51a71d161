"""Gold vs proxy (beyond the paper): is the reward model over-optimised? The proxy is the reward RL
maximises (R_RM); the gold is an independent measure of what it stands for: the validated LLM judge's
soft scores P(Yes) / (P(Yes) + P(No)) on its questions (e.g. factuality, naturalness). Over-optimisation
(Gao et al. 2023; Coste et al. 2024) shows as the proxy rising while the gold falls, along a run's
training (its adapter snapshots, rl.snapshot_steps) and across methods at the end of training.

Every number is a mean over the judged samples (the samples with a judge score) of every seed, with
the half-width of its 95% normal interval; changes are against the base model's samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..methods import parse_method, sort_key
from ..utils import InputError
from .tables import CI

Z95 = 1.959963984540054


def run_of(path: str | Path) -> tuple[str, int | None]:
    """(method, snapshot step or None) of a scored file: runs/<task>/<method>/seed<k>/scored.jsonl or
    runs/<task>/<method>/seed<k>/snapshots/step<N>/scored.jsonl."""
    p = Path(path)
    if p.parent.parent.name == "snapshots":
        return p.parent.parent.parent.parent.name, int(p.parent.name.removeprefix("step"))
    return p.parent.parent.name, None


def _mean_ci(x: pd.Series) -> tuple[float, float]:
    x = x.dropna().to_numpy(float)
    if x.size < 2:
        return (float(x.mean()) if x.size else np.nan), np.nan
    return float(x.mean()), float(Z95 * x.std(ddof=1) / np.sqrt(x.size))


def gold_vs_proxy(samples: pd.DataFrame, questions: list[str], final_step: int) -> pd.DataFrame:
    """One row per (method, step): `samples` are scored samples with `method`, `step` (NaN: the
    run's final policy: step `final_step` for an RL method, 0 for the base model, none for the
    others), `reward` (the proxy) and `judge_<q>` soft scores. Columns: judged samples, R_RM and each
    gold's mean ± CI over the judged samples, and their change against the base model."""
    if "base" not in set(samples["method"]):
        raise InputError("gold vs proxy: no scored samples of the base model (the reference of every change)")
    columns = [f"judge_{q}" for q in questions]
    missing = [c for c in columns if c not in samples]
    if missing:
        raise InputError(f"gold vs proxy: the scored samples have no {missing[0]!r} (evaluate with the judge asking it)")
    kind = samples["method"].map(lambda m: parse_method(m).kind)
    at_end = np.select([kind == "rl", kind == "base"], [final_step, 0], np.nan)
    judged = samples.assign(step=samples["step"].where(samples["step"].notna(), at_end).astype("Int64"))
    if columns:  # the samples the judge scored (every sample when there is no gold)
        judged = judged.dropna(subset=columns, how="all")
    rows = []
    for (method, step), group in judged.groupby(["method", "step"], sort=False, dropna=False):
        row = {"method": method, "step": step, "judged": len(group)}
        for col, name in [("reward", "R_RM"), *[(c, c.removeprefix("judge_")) for c in columns]]:
            row[name], row[name + CI] = _mean_ci(group[col])
        rows.append(row)
    table = pd.DataFrame(rows)
    base = table.set_index("method").loc["base"]
    for name in ["R_RM", *questions]:
        table.insert(table.columns.get_loc(name + CI) + 1, f"Δ {name}", table[name] - base[name])
    order = sorted(range(len(table)), key=lambda i: (sort_key(table["method"][i]), table["step"].fillna(-1)[i]))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "label", [parse_method(m).label for m in table["method"]])
    return table
