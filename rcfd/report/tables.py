"""The paper's tables (1, 5, 6) and this run next to the paper, from the per-run metrics CSVs (one
row per task, method, seed); every table written as CSV, Markdown and LaTeX (write_table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluate.metrics import EMPTY_RULE
from ..methods import parse_method, sort_key
from ..utils import InputError, atomic, write_csv

CI = "_ci95"  # suffix of a column holding the 95% CI half-width of the column it follows


CI_NOTE = (" Values: mean ± half-width of the 95% confidence interval of the mean over seeds (Student t, "
           "n−1 degrees of freedom for n seeds; the judge columns: Wilson, over the judged samples); a value "
           "without ± comes from a single seed.")


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
              "validated AUC), over every seed's judged samples together, ± the half-width of its Wilson 95% "
              "interval (even with one seed); Δ_demo = Σ over the informative judge questions of |judge score − the "
              "demonstrations' judge score| (the paper's judge: chat-Llama-70B; here the one the headers name). "
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


JUDGED = "_judged"  # suffix of a run's count of judged samples behind the judge column it follows


def wilson_ci95(k, n):
    """Half-width of the Wilson score 95% interval of a binomial fraction k/n (NaN for n = 0): the
    interval (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n), p = k/n, z = 1.96."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    z2 = 1.959963984540054 ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        half = np.sqrt(z2) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return np.where(n > 0, half, np.nan)


def pooled_fractions(frame: pd.DataFrame, by, columns: list[str]) -> pd.DataFrame:
    """For each judge column with a judged count (`<column>_judged`): the fraction over every seed's
    judged samples together per group, and its Wilson 95% half-width (`<column>_ci95`)."""
    from ..evaluate.judge import question_columns

    out = {}
    for c in question_columns(columns):
        if c + JUDGED not in frame:
            continue
        n = frame[c + JUDGED].fillna(0)
        k = (frame[c].fillna(0) * n).groupby(frame[by]).sum()
        n = n.groupby(frame[by]).sum()
        out[c], out[c + CI] = k / n.where(n > 0), pd.Series(wilson_ci95(k, n), index=n.index)
    return pd.DataFrame(out)


def summarise(frame: pd.DataFrame, by, columns: list[str]) -> pd.DataFrame:
    """Mean of `columns` per group of `by` (over seeds), each followed by `<column>_ci95` (NaN
    where a group has one seed)."""
    grouped = frame.groupby(by, sort=False)[columns]
    means, cis = grouped.mean(), grouped.agg(ci95)
    return pd.concat([means, cis.add_suffix(CI)], axis=1)[[c + s for c in columns for s in ("", CI)]]


def with_delta_demo(df: pd.DataFrame) -> pd.DataFrame:
    """Adds Δ_demo to every run of a task (rcfd.evaluate.judge.delta_demo against the demonstrations' judge
    scores, over the task's judge questions); the demonstrations' own is left empty, as in the paper."""
    from ..evaluate.judge import delta_demo, question_columns

    questions = [q for q in question_columns(df.columns) if df[q].notna().any()]  # left out: all NaN
    is_demo = df["method"] == "demonstrations"
    if not questions or not is_demo.any():
        return df
    demos = df.loc[is_demo, questions].mean()
    delta = df.apply(lambda run: delta_demo(run, demos, questions), axis=1)
    return df.assign(delta_demo=delta.where(~is_demo))


def apply_judge_validation(metrics: pd.DataFrame, scored: pd.DataFrame, validation: pd.DataFrame
                           ) -> tuple[pd.DataFrame, dict[str, str], str]:
    """The judge columns as the judge's validation (rcfd.evaluate.judge_validation) allows: an informative
    question's judge_<q> becomes the fraction of each run's judged samples whose soft score is above
    the threshold calibrated on labelled cases (`judge_<q>_judged`: how many were judged); a question
    that is not informative loses its columns (so it is neither printed nor part of Δ_demo). Only runs
    judged by the validated judge (`judge_model`, where the validation names it) get a value: a run
    evaluated by another judge is left empty, and a question no run of that judge answered is left
    out. Returns the metrics, each kept question's header suffix (its test AUC) and a caption note
    naming what was left out and why."""
    from ..evaluate.judge_validation import used_rows

    metrics, suffixes, kept, dropped, other_judge = metrics.copy(), {}, [], [], set()
    for row in used_rows(validation.to_dict("records")):
        column = f"judge_{row['question']}"
        judge = row.get("judge_model") if isinstance(row.get("judge_model"), str) else None
        same = (metrics["judge_model"] == judge) if judge and "judge_model" in metrics else \
            pd.Series(judge is None, index=metrics.index)
        informative = bool(row["informative"])
        if not informative or column not in metrics.columns or not same.any():
            metrics = metrics.drop(columns=[c for c in (column, column + "_soft") if c in metrics.columns])
            if not informative:  # named even when not asked (evaluate.judge.informative_only)
                dropped.append(f"{row['question']} (AUC {row['auc_test']:.3f})")
            else:  # informative, but no run was asked it by the validated judge
                other_judge.add(row["question"])
            continue
        if column not in scored.columns:
            raise InputError(f"judge question {row['question']!r}: the scored samples have no {column!r} scores")
        judged = scored.dropna(subset=[column])
        above = (judged[column] > row["threshold"]).groupby([judged["method"], judged["seed"]]).agg(["mean", "size"])
        runs = list(zip(metrics["method"], metrics["seed"]))
        metrics[column] = [above["mean"].get(run, np.nan) if ok else np.nan for run, ok in zip(runs, same)]
        metrics[column + JUDGED] = [above["size"].get(run, 0) if ok else 0 for run, ok in zip(runs, same)]
        if not same.all():
            other_judge.add(row["question"])
        suffixes[column] = f"AUC {row['auc_test']:.2f}"
        variant = row.get("variant") if isinstance(row.get("variant"), str) else "configured"
        kept.append(f"{row['question']} ({variant} wording) AUC {row['auc_test']:.2f}, Yes above {row['threshold']:.2f}")
    note = " Judge validated on labelled cases"
    note += f" ({'; '.join(kept)})" if kept else ""
    note += f"; not informative (AUC < min_auc), left out with their Δ_demo share: {', '.join(dropped)}" if dropped else ""
    if other_judge:
        note += (f"; informative but empty or left out for the runs not asked it by the validated judge (their "
                 f"evaluation predates it): {', '.join(sorted(other_judge))}")
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
    some method ran with two or more seeds, its 95% CI half-width beside it (`<column>_ci95`); a
    judge column with judged counts is the fraction over all seeds' judged samples with its Wilson
    half-width, with one seed too (`pooled_fractions`); then `seeds`. Rounded to the table's decimals."""
    df = with_delta_demo(metrics[metrics["task"] == cfg.task])
    missing = [c for c in cfg.columns if c not in df.columns and c not in cfg.optional]
    if missing:
        raise InputError(f"{cfg.name}: metrics lack column(s) {missing}")
    columns = [c for c in cfg.columns if c in df.columns and (c not in cfg.optional or df[c].notna().any())]
    seeds = df.groupby("method")["seed"].nunique()
    table = summarise(df, "method", columns).drop(columns="n" + CI, errors="ignore")  # a count: no interval
    pooled = pooled_fractions(df, "method", columns)  # judge columns: binomial over the judged samples
    table[pooled.columns] = pooled
    if seeds.max() < 2:  # one seed: CI columns only where the samples give one (the judge's)
        table = table[[c for col in columns for c in (col, col + CI) if c == col or c in pooled]]
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
    from ..paper import paper_table

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


def comparison(metrics: pd.DataFrame, names: list[str], labels: dict | None = None,
               suffixes: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """This run's numbers next to the paper's (rcfd/paper/<name>.csv), one row per (paper table,
    method, paper metric), for the tables `names`.

    Rows: every method of the paper's table or of this run's (the side that lacks one gets NaN),
    in the paper's row order; 'this run' is the number of this run's table (`summary`: mean over
    seeds, `this run_ci95` beside it when there were seeds); 'measured as' is the header of the
    column it comes from (a proxy says so), 'not measured' when this run has none."""
    from ..paper import paper_table

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
