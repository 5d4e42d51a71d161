"""Tables built from the per-run metrics CSVs (one row per task, method, seed)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from .methods import parse_method, run_sort_key, sort_key
from .metrics import EMPTY_RULE
from .utils import InputError, atomic, log, write_csv

CI = "_ci95"  # suffix of a column holding the 95% CI half-width of the column it follows
CI_NOTE = (" Values: mean ± half-width of the 95% confidence interval of the mean over seeds (Student t, "
           "n−1 degrees of freedom for n seeds); a value without ± comes from a single seed.")
HUMAN = "demonstrations"


@dataclass
class TableConfig:
    name: str = "table6"
    task: str = "movies"
    caption: str = ""
    # metric column -> header, in order (the paper's columns first, then what the project adds);
    # {judge} and {mauve} in a header are filled with the config's labels (evaluate.judge.label, ...)
    columns: dict = field(default_factory=dict)
    decimals: int = 2
    # the paper's columns (rcfd/paper/<name>.csv) -> this run's metric columns that measure them, best
    # first (the first one among `columns` is used); a proxy's header says what it is
    paper: dict = field(default_factory=dict)
    # overrides of `paper` for the length-reward block (Method.length_block), where the paper's A
    # averages the R_RM and length scores
    paper_length_block: dict = field(default_factory=dict)
    # columns that runs evaluated without a judge or MAUVE (older runs, configs without them) lack:
    # left out when no run has them, empty for the runs that lack them
    optional: tuple = ()

    @property
    def title(self) -> str:
        """The paper table's name, e.g. 'Table 6' (how the caption starts)."""
        return self.caption.split(" (")[0]


JUDGE_NOTE = ("Judge columns: fraction of judged samples the LLM judge answers Yes (its soft score above the "
              "threshold calibrated on labelled cases, results/judge/<task>.csv; the header gives the question's "
              "validated AUC); Δ_demo = Σ over the informative judge questions of |judge score − the "
              "demonstrations' judge score| (the paper's chat-Llama-70B judge; at default scale a weak 135M proxy). "
              "MAUVE: generations vs demonstrations on local sentence-encoder features.")
SAMPLES_NOTE = (" Samples: scored samples per run, every one counted in every column (greedy decoding is deterministic: "
                "one sample per prompt); empty share: the fraction with no token, by the rule: " + EMPTY_RULE + ".")
PREDATES_EMPTY_RULE = (" Runs without an empty share were evaluated before that rule: their empty samples count in "
                       "samples and length only, not in the reward, A or log-likelihood columns.")
# columns that runs evaluated without a judge or MAUVE, or before the empty-sample rule, lack
OPTIONAL = ("judge_success", "judge_naturalness", "judge_factuality", "judge_verbosity", "delta_demo", "mauve",
            "empty_share")
DEFAULT_LABELS = {"judge": "LLM judge", "mauve": "features"}
SAMPLE_COLUMNS = {"n": "samples", "empty_share": "empty share"}

TABLES = {
    "table6": TableConfig(
        name="table6", task="movies",
        caption="Table 6 (movie reviews): alignment score A, average reward, LLM-judge scores, judge proxies, "
                "Δ_demo, MAUVE, length and diversity. " + JUDGE_NOTE + SAMPLES_NOTE,
        columns={"alignment": "A ↓", "avg_reward": "avg R", "judge_success": "success ({judge})",
                 "judge_naturalness": "naturalness ({judge})", "success_vader": "success (VADER)",
                 "loglik_base": "naturalness (log-lik)", "delta_demo": "Δ_demo ↓ ({judge})",
                 "mauve": "MAUVE ({mauve})", "mean_tokens": "length", "distinct_2": "distinct-2",
                 "self_bleu": "self-BLEU", **SAMPLE_COLUMNS},
        optional=OPTIONAL,
        paper={"alignment": ("alignment",), "avg_reward": ("avg_reward",),
               "success": ("judge_success", "success_vader"), "naturalness": ("judge_naturalness", "loglik_base")}),
    "table5": TableConfig(
        name="table5", task="wiki",
        caption="Table 5 (Wikipedia, reward = average log-likelihood under the initial model): alignment score A "
                "of the log-likelihood distributions, average log-likelihood, LLM-judge naturalness, repetition, "
                "MAUVE and diversity, generations of the evaluation length. " + JUDGE_NOTE + SAMPLES_NOTE,
        columns={"alignment": "A ↓", "avg_reward": "log-lik", "judge_naturalness": "naturalness ({judge})",
                 "seq_rep_4": "seq-rep-4 ↓ (naturalness proxy)", "mauve": "MAUVE ({mauve})",
                 "mean_tokens": "length", "distinct_2": "distinct-2", "self_bleu": "self-BLEU", **SAMPLE_COLUMNS},
        optional=OPTIONAL,
        paper={"alignment": ("alignment",), "loglik": ("avg_reward",),
               "naturalness": ("judge_naturalness", "seq_rep_4")}),
    "table1": TableConfig(
        name="table1", task="summaries",
        caption="Table 1 (summarisation): preference reward R_RM, length (policy tokens), alignment score A of the "
                "R_RM distribution, Δ_demo over the informative judge questions, A averaged over R_RM and length (the "
                "paper's A with two rewards), the judge scores, MAUVE, diversity. " + JUDGE_NOTE + SAMPLES_NOTE,
        columns={"avg_reward": "R_RM", "mean_tokens": "length", "alignment": "A ↓",
                 "delta_demo": "Δ_demo ↓ ({judge})", "alignment_two": "A (R_RM, length) ↓",
                 "judge_success": "success ({judge})", "judge_factuality": "factuality ({judge})",
                 "judge_naturalness": "naturalness ({judge})", "judge_verbosity": "verbosity ({judge})",
                 "mauve": "MAUVE ({mauve})", "distinct_2": "distinct-2", "self_bleu": "self-BLEU", **SAMPLE_COLUMNS},
        optional=OPTIONAL,
        paper={"avg_reward": ("avg_reward",), "length": ("mean_tokens",), "alignment": ("alignment",),
               "delta_demo": ("delta_demo",)},
        paper_length_block={"alignment": ("alignment_two",)}),
}


def load_metrics(paths: list[str | Path]) -> pd.DataFrame:
    """The runs' metrics files (one row per run) as one frame; one line naming the file and row
    for an empty or cut file, a missing column or an unknown method."""
    import csv

    frames = []
    for p in paths:
        try:
            with open(p, newline="", encoding="utf-8") as f:
                lines = list(csv.reader(f))
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{p}: cannot be read as a metrics file ({e})") from None
        if len(lines) < 2:
            raise InputError(f"{p}: metrics file has no rows")
        for i, fields in enumerate(lines[1:]):
            if len(fields) != len(lines[0]):  # a row cut short (a half-written file) would read as NaNs
                raise InputError(f"{p}: row {i} has {len(fields)} fields, the header {len(lines[0])}")
        df = pd.read_csv(p)
        for col in ("task", "method", "seed"):
            if col not in df.columns:
                raise InputError(f"{p}: metrics file lacks column {col!r}")
        for i, method in enumerate(df["method"]):
            try:
                parse_method(str(method))
            except ValueError:
                raise InputError(f"{p}: row {i}: unknown method {method!r}") from None
        frames.append(df)
    if not frames:
        raise InputError("no metrics files given")
    return pd.concat(frames, ignore_index=True)


def ci95(values) -> float:
    """Half-width of the two-sided 95% confidence interval of the mean of `values` (Student t,
    n−1 degrees of freedom: t_{0.975, n−1} · s / √n); NaN with fewer than two finite values."""
    from scipy.stats import t

    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan")
    return float(t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def summarise(frame: pd.DataFrame, by, columns: list[str]) -> pd.DataFrame:
    """Mean of `columns` per group of `by` (over seeds), each followed by `<column>_ci95` (NaN
    where a group has one seed)."""
    grouped = frame.groupby(by, sort=False)[columns]
    means, cis = grouped.mean(), grouped.agg(ci95)
    return pd.concat([means, cis.add_suffix(CI)], axis=1)[[c + s for c in columns for s in ("", CI)]]


def with_delta_demo(df: pd.DataFrame) -> pd.DataFrame:
    """Adds Δ_demo to every run of a task (rcfd.judge.delta_demo against the demonstrations' judge
    scores, over the task's judge questions); the demonstrations' own is left empty, as in the paper."""
    from .judge import delta_demo, question_columns

    questions = [q for q in question_columns(df.columns) if df[q].notna().any()]  # left out: all NaN
    is_demo = df["method"] == "demonstrations"
    if not questions or not is_demo.any():
        return df
    demos = df.loc[is_demo, questions].mean()
    delta = df.apply(lambda run: delta_demo(run, demos, questions), axis=1)
    return df.assign(delta_demo=delta.where(~is_demo))


def apply_judge_validation(metrics: pd.DataFrame, scored: pd.DataFrame, validation: pd.DataFrame
                           ) -> tuple[pd.DataFrame, dict[str, str], str]:
    """The judge columns as the judge's validation (rcfd.judge_validation) allows: an informative
    question's judge_<q> becomes the fraction of each run's judged samples whose soft score is above
    the threshold calibrated on labelled cases; a question that is not informative loses its columns
    (so it is neither printed nor part of Δ_demo). Returns the metrics, each kept question's header
    suffix (its test AUC) and a caption note naming what was left out and why."""
    metrics, suffixes, kept, dropped = metrics.copy(), {}, [], []
    for row in validation.to_dict("records"):
        if isinstance(row.get("variant"), str) and row["variant"] != "configured":  # other wordings: not used
            continue
        column = f"judge_{row['question']}"
        if not bool(row["informative"]):  # named even when not asked (evaluate.judge.informative_only)
            metrics = metrics.drop(columns=[c for c in (column, column + "_soft") if c in metrics.columns])
            dropped.append(f"{row['question']} (AUC {row['auc_test']:.2f})")
            continue
        if column not in metrics.columns:
            continue
        if column not in scored.columns:
            raise InputError(f"judge question {row['question']!r}: the scored samples have no {column!r} scores")
        judged = scored.dropna(subset=[column])
        above = (judged[column] > row["threshold"]).groupby([judged["method"], judged["seed"]]).mean()
        metrics[column] = [above.get((m, s), np.nan) for m, s in zip(metrics["method"], metrics["seed"])]
        suffixes[column] = f"AUC {row['auc_test']:.2f}"
        kept.append(f"{row['question']} AUC {row['auc_test']:.2f}, Yes above {row['threshold']:.2f}")
    note = " Judge validated on labelled cases"
    note += f" ({'; '.join(kept)})" if kept else ""
    note += f"; not informative (AUC < min_auc), left out with their Δ_demo share: {', '.join(dropped)}" if dropped else ""
    return metrics, suffixes, note + "."


def validate_judge_columns(metrics: pd.DataFrame, scored: dict[str, pd.DataFrame],
                           validations: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict, dict]:
    """`apply_judge_validation` per task (the tasks with a validated judge): the metrics, and per
    task the header suffixes and the caption note."""
    parts, suffixes, notes = [], {}, {}
    for task, frame in metrics.groupby("task", sort=False):
        if task in validations:
            frame, suffixes[task], notes[task] = apply_judge_validation(frame, scored.get(task, pd.DataFrame()),
                                                                        validations[task])
        parts.append(frame)
    return pd.concat(parts, ignore_index=True), suffixes, notes


def summary(metrics: pd.DataFrame, cfg: TableConfig) -> pd.DataFrame:
    """A table's numbers per method name (index, the paper's row order): the mean over seeds of
    each configured metric column the runs have (an optional one no run has is left out) and, when
    some method ran with two or more seeds, its 95% CI half-width beside it (`<column>_ci95`); then
    `seeds`. Rounded to the table's decimals."""
    df = with_delta_demo(metrics[metrics["task"] == cfg.task])
    missing = [c for c in cfg.columns if c not in df.columns and c not in cfg.optional]
    if missing:
        raise InputError(f"{cfg.name}: metrics lack column(s) {missing}")
    columns = [c for c in cfg.columns if c in df.columns and (c not in cfg.optional or df[c].notna().any())]
    seeds = df.groupby("method")["seed"].nunique()
    table = summarise(df, "method", columns).drop(columns="n" + CI, errors="ignore")  # a count: no interval
    if seeds.max() < 2:  # one seed: no CI columns (the tables look as they always did)
        table = table[columns]
    table["seeds"] = seeds
    return table.loc[sorted(table.index, key=sort_key)].round(cfg.decimals)


def caption_of(metrics: pd.DataFrame, cfg: TableConfig) -> str:
    """The table's caption, saying so when some of its runs were evaluated before the empty-sample rule."""
    runs = metrics[metrics["task"] == cfg.task]
    before = "empty_share" not in runs or runs["empty_share"].isna().any()
    return cfg.caption + (PREDATES_EMPTY_RULE if before else "")


def labels_of(evaluate: dict) -> dict:
    """The judge / MAUVE labels a task's `evaluate` config gives its table headers."""
    return {k: evaluate[k].get("label", "") for k in ("judge", "mauve") if k in evaluate}


def headers(cfg: TableConfig, labels: dict | None = None) -> dict:
    """Metric column -> header, with the config's judge / MAUVE labels filled in."""
    labels = {**DEFAULT_LABELS, **{k: v for k, v in (labels or {}).items() if v}}
    return {c: h.format(**labels) for c, h in cfg.columns.items()}


def with_suffix(header: str, suffix: str | None) -> str:
    """'success (judge)' + 'AUC 0.7' -> 'success (judge, AUC 0.7)'; 'A' + 'x' -> 'A (x)'."""
    if not suffix:
        return header
    return f"{header[:-1]}, {suffix})" if header.endswith(")") else f"{header} ({suffix})"


def build_table(metrics: pd.DataFrame, cfg: TableConfig, labels: dict | None = None,
                suffixes: dict[str, str] | None = None) -> pd.DataFrame:
    """The table as written: `summary` with method labels and the configured headers
    (`<header>_ci95` for the CI columns; `suffixes` added to some, e.g. a judge question's AUC)."""
    table = summary(metrics, cfg)
    table.insert(0, "method", [parse_method(m).label for m in table.index])
    names = {c: with_suffix(h, (suffixes or {}).get(c)) for c, h in headers(cfg, labels).items()}
    return table.reset_index(drop=True).rename(columns={**names, **{c + CI: h + CI for c, h in names.items()}})


def with_ci(table: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """For display: every column followed by `<column>_ci95` becomes "mean ± ci" text (just the mean
    where the CI is NaN); a table without CI columns is returned as it is."""
    cis = [c for c in table.columns if c.endswith(CI) and c[:-len(CI)] in table.columns]
    if not cis:
        return table
    out = table.drop(columns=cis)
    for c in cis:
        col = c[:-len(CI)]
        out[col] = [f"{m:.{decimals}f}" + (f" ± {h:.{decimals}f}" if h == h else "") for m, h in zip(table[col], table[c])]
    return out


def paper_block(name: str) -> str:
    """The paper's own values for table `name`, as a labelled markdown block ('' if not kept)."""
    from .paper import paper_table

    paper = paper_table(name)
    if paper is None:
        return ""
    paper.insert(0, "method", [parse_method(m).label for m in paper.pop("method")])
    return (f"\n\nFor reference, the paper's values (arXiv 2404.19409, {name}; LLaMA-2-7B policy, "
            f"LLM judge; not comparable in absolute terms):\n\n{paper.to_markdown(index=False)}\n")


def write_table(table: pd.DataFrame, prefix: str | Path, caption: str, decimals: int = 2) -> list[Path]:
    """<prefix>.csv (numbers: means, and `_ci95` half-widths when there are seeds to spread over),
    .md and .tex (the same, "mean ± ci", the caption saying so)."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_suffix(s) for s in (".csv", ".md", ".tex")]
    write_csv(table, paths[0])
    shown = with_ci(table, decimals)
    if shown is not table:
        caption = caption.rstrip(".") + "." + CI_NOTE
    md = f"{caption}\n\n{shown.to_markdown(index=False)}\n{paper_block(prefix.name)}"
    with atomic(paths[1]) as tmp:
        tmp.write_text(md, encoding="utf-8")
    with atomic(paths[2]) as tmp:
        tmp.write_text(shown.to_latex(index=False, caption=caption, float_format=f"%.{decimals}f"), encoding="utf-8")
    return paths



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


def time_breakdown(jobs: pd.DataFrame, rules: list[str]) -> pd.DataFrame:
    """Where a run spends its job-minutes: per rule, the jobs, their summed wall minutes and share,
    the longest job, CPU minutes (over wall: the cores a job kept busy) and the peak memory; rules in
    `rules` (the workflow's) only, biggest first, and a total row. Job-minutes add up the jobs that
    ran side by side, so they exceed the run's wall time when jobs run in parallel."""
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
    return pd.concat([table, total]).rename_axis("rule").reset_index().round(2)


def rl_step_breakdown(logs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Where an RL step's wall time goes, from the training logs' per-step phase times
    (`time/<phase>`, rl.StepPhases): per run, the steps timed, the mean seconds of a step (TRL's
    step_time plus the optimizer step) and of each phase, `other` being what step_time holds beyond
    the timed phases (tokenising, advantages, metrics); a last row gives each phase's share of all
    the runs' step time. Runs whose log has no phase times (PPO's loop, older runs) are left out."""
    from .rl import PHASES

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
                     **{f"{p} (s)": v for p, v in seconds.items()}})
    if not rows:
        raise InputError("RL step breakdown: no training log with phase times (time/<phase>)")
    table = pd.DataFrame(rows)
    parts = [c for c in table.columns if c.endswith(" (s)")]
    weights = table["steps"]  # pooled over every timed step of every run
    share = {c: 100 * (table[c] * weights).sum() / (table["s/step"] * weights).sum() for c in parts}
    total = pd.DataFrame([{"run": "share of all steps (%)", "steps": weights.sum(), "s/step": 100.0, **share}])
    return pd.concat([table, total], ignore_index=True).round(2)


def plateau(values: pd.Series) -> dict[str, float]:
    """Whether a training curve has levelled off: the change of the mean from the third to the last
    quarter of the steps (`delta`), the per-step spread over those two quarters (`sd`) and the
    standard error of that change, sd * sqrt(2 / q) for quarters of q steps (`se`); `plateau` when
    |delta| <= 2 se, i.e. the last quarter's mean is within noise of the one before."""
    values = values.dropna()
    q = max(1, len(values) // 4)
    last, previous = values.iloc[-q:].mean(), values.iloc[-2 * q:-q].mean()
    sd = values.iloc[-2 * q:].std()
    se = sd * (2 / q) ** 0.5
    # 1e-6: a constant curve (a length pinned at the cap, a whitened objective of 0) is flat up to rounding
    return {"first quarter": values.iloc[:q].mean(), "last quarter": last, "delta": last - previous, "sd": sd,
            "se": se, "plateau": bool(abs(last - previous) <= 2 * se + 1e-6)}


TRAINING_QUANTITIES = {"reward": "objective", "monitor/reward_model": "R_RM", "monitor/length": "length",
                       "monitor/empty": "empty share"}


TRAINING_CAPTION = ("Did RL training level off? Per run and logged quantity: the mean of the first and last quarter "
                    "of the steps, the change between the last two quarters (delta) with its standard error "
                    "(se = sd of a step over those quarters x sqrt(2 / quarter length)), plateau = |delta| <= 2 se; "
                    "demonstrations: the training demonstrations' mean, RCfD's target. Two-reward RCfD's objective is "
                    "a sum of batch-whitened terms, 0 on average by construction: read its R_RM and length")


def training_plateaus(logs: dict[str, pd.DataFrame], demos: dict[str, float] | None = None) -> pd.DataFrame:
    """Per RL run and logged quantity (the training objective and, where logged, the samples' raw R_RM,
    length and share of empty answers): the steps, the first and last quarter's means, the change
    between the last two quarters with its standard error, and whether it levelled off (`plateau`);
    `demos` (demo_reward, demo_tokens): the training demonstrations' means, the RCfD targets."""
    target = {"monitor/reward_model": (demos or {}).get("demo_reward"),
              "monitor/length": (demos or {}).get("demo_tokens")}
    rows = []
    for name in sorted(logs, key=run_sort_key):
        for column, label in TRAINING_QUANTITIES.items():
            if column not in logs[name] or logs[name][column].isna().all():
                continue
            values = logs[name][column].dropna()
            row = {"run": name, "quantity": label, "steps": len(values), **plateau(values),
                   "demonstrations": target.get(column)}
            if len(values) < 8:  # quarters of one step: too few to judge a plateau by
                row["plateau"] = None
            rows.append(row)
    if not rows:
        raise InputError("training plateaus: no training log with a logged step")
    return pd.DataFrame(rows).round(3)


def non_dominated(points: pd.DataFrame) -> list:
    """The rows (mean_tokens, avg_reward) that no other row beats: none is as short and as
    rewarded and strictly better in one of the two. Joined by length they are the Pareto front."""
    def beaten(a, b):
        return (b.mean_tokens <= a.mean_tokens and b.avg_reward >= a.avg_reward
                and (b.mean_tokens < a.mean_tokens or b.avg_reward > a.avg_reward))
    rows = list(points.itertuples())
    return [a.Index for a in rows if not any(beaten(a, b) for b in rows)]


def in_alpha_sweep(method: str) -> bool:
    """R beta=0 (alpha = 0) and the R_alpha runs: the sweep whose non-dominated points are Figure 4's front."""
    return method == "beta0" or parse_method(method).alpha > 0


FRONT_CAPTION = ("Figure 4's points (mean over seeds): each method's length and R_RM, their relative gaps to the "
                 "demonstrations', whether both are within 15% of them, whether the point is on the alpha sweep's "
                 "Pareto front (no sweep run as short and as rewarded), and its R_RM minus the best R_RM of a sweep run "
                 "no longer than it (front gap; > 0: beyond the front, empty: shorter than every sweep run)")


def front_table(metrics: pd.DataFrame, tolerance: float = 0.15) -> pd.DataFrame:
    """Where each method of the two-reward use case sits against the demonstrations and the alpha
    sweep's front (the paper's C5: two-reward RCfD lands near the demonstrations' point, on the front,
    without tuning alpha). A point is on the front when no sweep run beats it (non_dominated over the
    sweep and the point); its front gap compares it with what the sweep attains at its length."""
    means = summarise(metrics, "method", ["mean_tokens", "avg_reward"])[["mean_tokens", "avg_reward"]]
    if "demonstrations" not in means.index:
        raise InputError("figure 4's table: no 'demonstrations' run among the metrics")
    demo = means.loc["demonstrations"]
    sweep = means.loc[[m for m in means.index if in_alpha_sweep(m)]]
    rows = []
    for m in sorted((m for m in means.index if m != "demonstrations"), key=sort_key):
        point = means.loc[m]
        gaps = {c: point[c] / demo[c] - 1 for c in ("mean_tokens", "avg_reward")}
        shorter = sweep[sweep["mean_tokens"] <= point["mean_tokens"]]
        rows.append({"method": parse_method(m).label, "length": point["mean_tokens"], "R_RM": point["avg_reward"],
                     "length vs demos (%)": 100 * gaps["mean_tokens"], "R_RM vs demos (%)": 100 * gaps["avg_reward"],
                     f"within {tolerance:.0%} of demos": all(abs(g) <= tolerance for g in gaps.values()),
                     "on the α front": m in non_dominated(pd.concat([sweep.drop(m, errors="ignore"), means.loc[[m]]]))
                     if len(sweep) else None,
                     "front gap (R_RM)": point["avg_reward"] - shorter["avg_reward"].max() if len(shorter) else None})
    return pd.DataFrame(rows).round(3)


ALGORITHM_COLUMNS = {"alignment": "A ↓", "avg_reward": "avg R", "mean_tokens": "length", "distinct_2": "distinct-2",
                     "self_bleu": "self-BLEU"}


def algorithm_comparison(metrics: pd.DataFrame, step_seconds: dict[str, list[float]]) -> pd.DataFrame:
    """RLOO next to PPO (the paper's optimiser): per RL method and optimiser, the alignment score,
    average reward, length, diversity (means over seeds) and the median and fastest wall seconds of
    a training step (`step_seconds`: every step's, by method name; the fastest is the one least
    slowed by other jobs sharing the machine)."""
    rl = metrics[[parse_method(m).kind == "rl" for m in metrics["method"]]]
    if rl.empty:
        raise InputError("rloo_vs_ppo: no RL runs among the metrics")
    table = rl.groupby("method")[list(ALGORITHM_COLUMNS)].mean()
    table = table.loc[sorted(table.index, key=sort_key)]
    methods = [parse_method(m) for m in table.index]
    table.insert(0, "algorithm", [m.algorithm.upper() for m in methods])
    table.insert(0, "method", [m.base_label for m in methods])
    table["s/step"] = [np.median(step_seconds[m.name]) if m.name in step_seconds else np.nan for m in methods]
    table["fastest step (s)"] = [min(step_seconds[m.name]) if m.name in step_seconds else np.nan for m in methods]
    return table.rename(columns=ALGORITHM_COLUMNS).reset_index(drop=True).round(3)


def comparison(metrics: pd.DataFrame, names: list[str], labels: dict | None = None,
               suffixes: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """This run's numbers next to the paper's (rcfd/paper/<name>.csv), one row per (paper table,
    method, paper metric), for the tables `names`.

    Rows: every method of the paper's table or of this run's (the side that lacks one gets NaN),
    in the paper's row order; 'this run' is the number of this run's table (`summary`: mean over
    seeds, `this run_ci95` beside it when there were seeds); 'measured as' is the header of the
    column it comes from (a proxy says so), 'not measured' when this run has none."""
    from .paper import paper_table

    rows = []
    for name in names:
        cfg, paper = TABLES[name], paper_table(name)
        if paper is None:
            continue
        ours, paper = summary(metrics, cfg), paper.set_index("method")
        for method in sorted(set(paper.index) | set(ours.index), key=sort_key):
            m = parse_method(method)
            for metric, candidates in {**cfg.paper, **(cfg.paper_length_block if m.length_block else {})}.items():
                col = next((c for c in candidates if c in ours.columns), None)
                here = col is not None and method in ours.index
                rows.append({"table": cfg.title, "method": m.label, "metric": metric,
                             "paper": paper.at[method, metric] if method in paper.index else np.nan,
                             "this run": ours.at[method, col] if here else np.nan,
                             "this run" + CI: ours.at[method, col + CI] if here and col + CI in ours else np.nan,
                             "measured as": with_suffix(headers(cfg, labels)[col], (suffixes or {}).get(
                                 cfg.task, {}).get(col)) if col else "not measured"})
    frame = pd.DataFrame(rows, columns=["table", "method", "metric", "paper", "this run", "this run" + CI,
                                        "measured as"])
    return frame if frame["this run" + CI].notna().any() else frame.drop(columns="this run" + CI)


@dataclass
class SensitivityConfig:
    """The appendix table of the alignment estimator's sensitivity: A recomputed from every run's
    per-sample rewards on a grid of histogram settings (rcfd.metrics.AlignmentConfig)."""
    name: str = "appendix_alignment"
    caption: str = ""
    bins: tuple = (10, 20, 40)
    smoothing: tuple = (0.1, 0.5, 1.0)
    decimals: int = 3


APPENDIX = {
    "appendix_alignment": SensitivityConfig(
        caption="Appendix: sensitivity of the alignment score A = KL(ρ_demo ‖ ρ_π) to its density estimator "
                "(histogram with `bins` equal-width bins, `smoothing` pseudo-counts per bin; the paper does not "
                "state its estimator). Columns: bins/smoothing; cells: A of each method from its scored samples' "
                "reward (R_RM for the summaries, without the length reward) against the demonstrations', mean "
                "over seeds; 'configured' is the task's own estimator (its A is the tables'). Last rows per "
                "task: Spearman ρ and Kendall τ between the methods' ranking by A in that column and under "
                "the configured estimator (1 = same ranking)."),
}


def alignment_sensitivity(scored: pd.DataFrame, configured: dict, cfg: SensitivityConfig) -> pd.DataFrame:
    """scored: one row per sample (task, method, seed, reward), the demonstrations included;
    configured: task -> {bins, smoothing} (the task's AlignmentConfig). One row per (task, method
    but the demonstrations) with A per estimator column "bins/smoothing", then the rank
    correlations of each column with the configured estimator's ranking."""
    from scipy.stats import kendalltau, spearmanr

    from .metrics import AlignmentConfig, alignment_score

    require_finite_rewards(scored)
    rows = []
    for task, frame in scored.groupby("task", sort=False):
        conf = AlignmentConfig(**configured[task])
        grid = [AlignmentConfig(b, s) for b, s in product(cfg.bins, cfg.smoothing)]
        grid += [conf] if conf not in grid else []
        demos = frame.loc[frame["method"] == HUMAN, "reward"]
        runs = frame[frame["method"] != HUMAN].groupby(["method", "seed"])["reward"]
        a = pd.DataFrame({f"{g.bins}/{g.smoothing:g}": runs.agg(lambda r, d=demos, g=g: alignment_score(d, r, g))
                          for g in grid}).groupby("method").mean()
        a = a.loc[sorted(a.index, key=sort_key)]
        ref = a[f"{conf.bins}/{conf.smoothing:g}"]
        with warnings.catch_warnings():  # a constant column (ties everywhere) gives NaN, said as such
            warnings.simplefilter("ignore")
            corr = pd.DataFrame({c: [f(ref, a[c])[0] if len(a) > 1 else np.nan for f in (spearmanr, kendalltau)]
                                 for c in a.columns}, index=["Spearman ρ vs configured", "Kendall τ vs configured"])
        block = pd.concat([a.set_axis([parse_method(m).label for m in a.index]), corr])
        block.insert(0, "configured", f"{conf.bins}/{conf.smoothing:g}")
        rows.append(block.rename_axis("method").reset_index().assign(task=task))
    table = pd.concat(rows, ignore_index=True)
    front = ["task", "method", "configured"]
    return table[front + [c for c in table.columns if c not in front]].round(cfg.decimals)


def require_finite_rewards(scored: pd.DataFrame) -> None:
    """Every sample counts (rcfd.metrics.EMPTY_RULE): a scored file with a missing reward was
    written by an older evaluation, and dropping the sample would change A silently."""
    bad = scored[~np.isfinite(scored["reward"].astype(float))]
    if len(bad):
        row = bad.iloc[0]
        raise InputError(f"{len(bad)} scored sample(s) without a finite reward, e.g. {row['task']} {row['method']} seed "
                         f"{row['seed']} sample {row['id']}: re-evaluate the run")


@dataclass
class CalibrationConfig:
    """The appendix table that explains an alignment score: per method, the mean squared error of
    a sample's reward to its own prompt's demonstration reward (what RCfD minimises) and its parts
    (rcfd.metrics.calibration_decomposition)."""
    name: str = "calibration"
    decimals: int = 3
    caption: str = (
        "Appendix: where each method's squared error to its own demonstration's reward comes from, on the "
        "evaluation prompts: mse = bias² + within + between + var(demo) − 2 cov, with bias = mean policy reward "
        "− mean demonstration reward, within = the policy's reward variance inside one prompt (mean over prompts), "
        "between = the variance over prompts of a prompt's mean reward, var(demo) = the demonstrations' reward "
        "variance, cov = covariance of a prompt's mean reward with its demonstration's; corr = correlation of a "
        "sample's reward with its prompt's demonstration reward. Mean over seeds. RCfD minimises mse: with a "
        "target the prompt barely predicts (small cov), the cheapest way down is to shrink the policy's own "
        "variance rather than to match the demonstrations' spread, which the alignment score A rewards.")

    COLUMNS = {"mse": "mse", "bias2": "bias²", "var_within": "within", "var_between": "between",
               "var_demo": "var(demo)", "cov": "cov", "corr": "corr", "alignment": "A ↓"}


def calibration_table(scored: pd.DataFrame, configured: dict, cfg: CalibrationConfig) -> pd.DataFrame:
    """scored: one row per sample (task, method, seed, id, reward), the demonstrations' rows
    included (their reward is each prompt's target); configured: task -> its AlignmentConfig
    settings (for the A column). One row per (task, method) but the demonstrations, the
    decomposition's terms as columns (mean over seeds)."""
    from .metrics import AlignmentConfig, alignment_score, calibration_decomposition

    require_finite_rewards(scored)
    rows = []
    for task, frame in scored.groupby("task", sort=False):
        demos = frame[frame["method"] == HUMAN].drop_duplicates("id").set_index("id")["reward"]
        if demos.empty:
            raise InputError(f"calibration table: task {task!r} has no demonstrations' scored samples")
        runs = frame[frame["method"] != HUMAN]
        unknown = set(runs["id"]) - set(demos.index)
        if unknown:
            raise InputError(f"calibration table: {len(unknown)} {task} sample id(s) match no demonstration, "
                             f"e.g. {sorted(unknown)[0]!r}")
        for (method, seed), run in runs.groupby(["method", "seed"], sort=False):
            terms = calibration_decomposition(run["id"], run["reward"], demos.loc[run["id"]].to_numpy())
            terms["alignment"] = alignment_score(demos, run["reward"], AlignmentConfig(**configured[task]))
            rows.append({"task": task, "method": method, "seed": seed, **terms})
    frame = pd.DataFrame(rows).groupby(["task", "method"], sort=False)[list(cfg.COLUMNS)].mean().reset_index()
    frame = frame.sort_values(["task", "method"], key=lambda c: c.map(sort_key) if c.name == "method" else c,
                              kind="stable")
    frame["method"] = frame["method"].map(lambda m: parse_method(m).label)
    return frame.rename(columns=cfg.COLUMNS).round(cfg.decimals).reset_index(drop=True)


# the appendix tables built from every run's scored samples: name -> (builder, its config)
APPENDIX_BUILDERS = {"appendix_alignment": alignment_sensitivity, "calibration": calibration_table}
APPENDIX["calibration"] = CalibrationConfig()
