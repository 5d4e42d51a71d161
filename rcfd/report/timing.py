"""Where the time goes: job-minutes per rule from Snakemake's benchmark files, and seconds per phase
of an RL step from the training logs (rcfd.train.trl_patches.StepPhases)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..utils import InputError, log


def read_benchmarks(folder: str | Path) -> pd.DataFrame:
    """Snakemake's benchmark files under `folder` (<rule>.tsv or <rule>/<wildcards>.tsv), one row per
    job: path, rule, wall seconds `s`, CPU seconds `cpu_time`, peak resident memory `max_rss` (MB)."""
    rows = []
    for f in sorted(Path(folder).rglob("*.tsv")):
        rel = f.relative_to(folder)
        try:
            job = pd.read_csv(f, sep="\t").iloc[0]
        except (pd.errors.ParserError, pd.errors.EmptyDataError, IndexError) as e:
            raise InputError(f"benchmark file {f}: not a Snakemake benchmark ({e})") from e
        missing = {"s", "cpu_time", "max_rss"} - set(job.index)
        if missing:
            raise InputError(f"benchmark file {f}: no column {sorted(missing)[0]!r}")
        rows.append({"path": str(rel), "rule": rel.parts[0].removesuffix(".tsv"),
                     **{k: pd.to_numeric(job[k], errors="coerce") for k in ("s", "cpu_time", "max_rss")}})
    return pd.DataFrame(rows, columns=["path", "rule", "s", "cpu_time", "max_rss"])


JUDGE_ROW = "  of which the LLM judge"  # the part of the evaluation jobs' minutes spent judging


def time_breakdown(jobs: pd.DataFrame, rules: list[str], judge_seconds: pd.Series | None = None) -> pd.DataFrame:
    """Where a run spends its job-minutes: per rule, the jobs, their summed wall minutes and share,
    the longest job, CPU minutes (over wall: the cores a job kept busy) and the peak memory; rules in
    `rules` (the workflow's) only, biggest first, and a total row. Job-minutes add up the jobs that
    ran side by side, so they exceed the run's wall time when jobs run in parallel. With
    `judge_seconds` (each evaluation's seconds in the LLM judge, from its metrics' provenance), a
    row under `evaluate` gives the judge's part of them (not counted again in the total)."""
    unknown = sorted(set(jobs["rule"]) - set(rules))
    if unknown:
        log.warning("time breakdown: benchmark folders of no rule of this workflow left out: %s", unknown)
    jobs = jobs[jobs["rule"].isin(rules)]
    if jobs.empty:
        raise InputError("time breakdown: no benchmark file of this workflow's rules")
    g = jobs.groupby("rule")
    table = pd.DataFrame({"jobs": g.size(), "job-minutes": g["s"].sum() / 60, "longest job (min)": g["s"].max() / 60,
                          "CPU-minutes": g["cpu_time"].sum() / 60, "peak memory (GB)": g["max_rss"].max() / 1024})
    table = table.sort_values("job-minutes", ascending=False)
    table.insert(2, "share (%)", 100 * table["job-minutes"] / table["job-minutes"].sum())
    total = pd.DataFrame({"jobs": [len(jobs)], "job-minutes": [table["job-minutes"].sum()], "share (%)": [100.0],
                          "longest job (min)": [table["longest job (min)"].max()],
                          "CPU-minutes": [table["CPU-minutes"].sum()],
                          "peak memory (GB)": [table["peak memory (GB)"].max()]}, index=["total"])
    judge = judge_seconds.dropna() if judge_seconds is not None else pd.Series(dtype=float)
    if len(judge):
        row = pd.DataFrame({"jobs": [len(judge)], "job-minutes": [judge.sum() / 60],
                            "share (%)": [100 * judge.sum() / 60 / table["job-minutes"].sum()],
                            "longest job (min)": [judge.max() / 60]}, index=[JUDGE_ROW])
        at = list(table.index).index("evaluate") + 1 if "evaluate" in table.index else len(table)
        table = pd.concat([table.iloc[:at], row, table.iloc[at:]])
    return pd.concat([table, total]).rename_axis("rule").reset_index().round(2)


def step_shape(frame: pd.DataFrame, sequences: int) -> tuple[float, float]:
    """A run's mean prompt and completion tokens per sequence, from TRL's log: `num_tokens` (prompt +
    completion tokens seen, cumulative) and `completions/mean_length`."""
    completion = frame["completions/mean_length"]
    prompt = frame["num_tokens"].diff().fillna(frame["num_tokens"]) / sequences - completion
    return float(prompt.mean()), float(completion.mean())


def against_floors(frame: pd.DataFrame, seconds: dict[str, float]) -> dict[str, float]:
    """The sampling and training phases' floors (rcfd.train.floors.step_floors, from the roofline the
    job recorded: frame.attrs["roofline"]) and the measured time over each; {} for a log without one."""
    from ..train.floors import step_floors

    r = frame.attrs.get("roofline")
    if not r or not {"num_tokens", "completions/mean_length"} <= set(frame.columns):
        return {}
    floors = step_floors(r, *step_shape(frame.dropna(subset=["num_tokens"]), r["sequences"]))
    train = seconds["train_forward"] + seconds["backward"]
    return {"generate floor (s)": floors["generate"], "generate x floor": seconds["generate"] / floors["generate"],
            "train floor (s)": floors["train"], "train x floor": train / floors["train"]}


def rl_step_breakdown(logs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Where an RL step's wall time goes, from the training logs' per-step phase times
    (`time/<phase>`, rl.StepPhases): per run, the steps timed, the mean seconds of a step (TRL's
    step_time plus the optimizer step) and of each phase, `other` being what step_time holds beyond
    the timed phases (tokenising, advantages, metrics); a last row gives each phase's share of all
    the runs' step time. Runs whose log has no phase times (PPO's loop, older runs) are left out. Where
    the job recorded its roofline (policy/roofline.json, frame.attrs["roofline"]), the sampling and the
    training (forward + backward) phases' floors on its machine and the measured time over each."""
    from ..train.phases import PHASES

    columns = [f"time/{p}" for p in PHASES]
    rows = []
    for name, frame in logs.items():
        if not set(columns) <= set(frame.columns):
            continue
        steps = frame.dropna(subset=[*columns, "step_time"])
        if steps.empty:
            continue
        seconds = {p: steps[c].mean() for p, c in zip(PHASES, columns)}
        seconds["other"] = steps["step_time"].mean() - sum(v for p, v in seconds.items() if p != "optimizer")
        rows.append({"run": name, "steps": len(steps), "s/step": steps["step_time"].mean() + seconds["optimizer"],
                     **{f"{p} (s)": v for p, v in seconds.items()}, **against_floors(frame, seconds)})
    if not rows:
        raise InputError("RL step breakdown: no training log with phase times (time/<phase>)")
    table = pd.DataFrame(rows)
    parts = [c for c in table.columns if c.endswith(" (s)") and "floor" not in c]
    weights = table["steps"]  # pooled over every timed step of every run
    share = {c: 100 * (table[c] * weights).sum() / (table["s/step"] * weights).sum() for c in parts}
    total = pd.DataFrame([{"run": "share of all steps (%)", "steps": weights.sum(), "s/step": 100.0, **share}])
    return pd.concat([table, total], ignore_index=True).round(2)
