"""Tables built from the per-run metrics CSVs (one row per task, method, seed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .methods import parse_method, sort_key
from .utils import InputError


@dataclass
class TableConfig:
    name: str = "table6"
    task: str = "movies"
    caption: str = ""
    # metric column -> header, in order (the paper's columns first, then what the project adds);
    # {judge} and {mauve} in a header are filled with the config's labels (evaluate.judge.label, ...)
    columns: dict = field(default_factory=dict)
    decimals: int = 2
    # columns that runs evaluated without a judge or MAUVE (older runs, configs without them) lack:
    # left out when no run has them, empty for the runs that lack them
    optional: tuple = ()


JUDGE_NOTE = ("Judge columns: fraction of samples the LLM judge answers Yes; Δ_demo = Σ over the judge questions "
              "of |judge score − the demonstrations' judge score| (the paper's chat-Llama-70B judge; at default "
              "scale a weak 135M proxy). MAUVE: generations vs demonstrations on local sentence-encoder features.")
OPTIONAL = ("judge_success", "judge_naturalness", "judge_factuality", "judge_verbosity", "delta_demo", "mauve")
DEFAULT_LABELS = {"judge": "LLM judge", "mauve": "features"}

TABLES = {
    "table6": TableConfig(
        name="table6", task="movies",
        caption="Table 6 (movie reviews): alignment score A, average reward, LLM-judge scores, judge proxies, "
                "Δ_demo, MAUVE, length and diversity. " + JUDGE_NOTE,
        columns={"alignment": "A ↓", "avg_reward": "avg R", "judge_success": "success ({judge})",
                 "judge_naturalness": "naturalness ({judge})", "success_vader": "success (VADER)",
                 "loglik_base": "naturalness (log-lik)", "delta_demo": "Δ_demo ↓ ({judge})",
                 "mauve": "MAUVE ({mauve})", "mean_tokens": "length", "distinct_2": "distinct-2",
                 "self_bleu": "self-BLEU"},
        optional=OPTIONAL),
    "table5": TableConfig(
        name="table5", task="wiki",
        caption="Table 5 (Wikipedia, reward = average log-likelihood under the initial model): alignment score A "
                "of the log-likelihood distributions, average log-likelihood, LLM-judge naturalness, repetition, "
                "MAUVE and diversity, generations of the evaluation length. " + JUDGE_NOTE,
        columns={"alignment": "A ↓", "avg_reward": "log-lik", "judge_naturalness": "naturalness ({judge})",
                 "seq_rep_4": "seq-rep-4 ↓ (naturalness proxy)", "mauve": "MAUVE ({mauve})",
                 "mean_tokens": "length", "distinct_2": "distinct-2", "self_bleu": "self-BLEU"},
        optional=OPTIONAL),
    "table1": TableConfig(
        name="table1", task="summaries",
        caption="Table 1 (summarisation): preference reward R_RM, length (policy tokens), alignment score A of the "
                "R_RM distribution, Δ_demo over the four judge questions, A averaged over R_RM and length (the "
                "paper's A with two rewards), the judge scores, MAUVE, diversity. " + JUDGE_NOTE,
        columns={"avg_reward": "R_RM", "mean_tokens": "length", "alignment": "A ↓",
                 "delta_demo": "Δ_demo ↓ ({judge})", "alignment_two": "A (R_RM, length) ↓",
                 "judge_success": "success ({judge})", "judge_factuality": "factuality ({judge})",
                 "judge_naturalness": "naturalness ({judge})", "judge_verbosity": "verbosity ({judge})",
                 "mauve": "MAUVE ({mauve})", "distinct_2": "distinct-2", "self_bleu": "self-BLEU"},
        optional=OPTIONAL),
}


def load_metrics(paths: list[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        df = pd.read_csv(p)
        for col in ("task", "method", "seed"):
            if col not in df.columns:
                raise InputError(f"{p}: metrics file lacks column {col!r}")
        frames.append(df)
    if not frames:
        raise InputError("no metrics files given")
    return pd.concat(frames, ignore_index=True)


def with_delta_demo(df: pd.DataFrame) -> pd.DataFrame:
    """Adds Δ_demo to every run of a task (rcfd.judge.delta_demo against the demonstrations' judge
    scores, over the task's judge questions); the demonstrations' own is left empty, as in the paper."""
    from .judge import delta_demo, question_columns

    questions = question_columns(df.columns)
    is_demo = df["method"] == "demonstrations"
    if not questions or not is_demo.any():
        return df
    demos = df.loc[is_demo, questions].mean()
    delta = df.apply(lambda run: delta_demo(run, demos, questions), axis=1)
    return df.assign(delta_demo=delta.where(~is_demo))


def build_table(metrics: pd.DataFrame, cfg: TableConfig, labels: dict | None = None) -> pd.DataFrame:
    """Mean over seeds per method, in the paper's row order; one column per configured metric."""
    df = with_delta_demo(metrics[metrics["task"] == cfg.task])
    missing = [c for c in cfg.columns if c not in df.columns and c not in cfg.optional]
    if missing:
        raise InputError(f"{cfg.name}: metrics lack column(s) {missing}")
    columns = [c for c in cfg.columns if c in df.columns]
    grouped = df.groupby("method")
    table = grouped[columns].mean()
    table["seeds"] = grouped["seed"].nunique()
    table = table.loc[sorted(table.index, key=sort_key)]
    table.insert(0, "method", [parse_method(m).label for m in table.index])
    labels = {**DEFAULT_LABELS, **{k: v for k, v in (labels or {}).items() if v}}
    table = table.reset_index(drop=True).rename(columns={c: cfg.columns[c].format(**labels) for c in columns})
    return table.round(cfg.decimals)


def paper_block(name: str) -> str:
    """The paper's own values for table `name`, as a labelled markdown block ('' if not kept)."""
    from .paper import paper_table

    paper = paper_table(name)
    if paper is None:
        return ""
    paper.insert(0, "method", [parse_method(m).label for m in paper.pop("method")])
    return (f"\n\nFor reference, the paper's values (arXiv 2404.19409, {name}; LLaMA-2-7B policy, "
            f"LLM judge; not comparable in absolute terms):\n\n{paper.to_markdown(index=False)}\n")


def write_table(table: pd.DataFrame, prefix: str | Path, caption: str) -> list[Path]:
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_suffix(s) for s in (".csv", ".md", ".tex")]
    table.to_csv(paths[0], index=False)
    md = f"{caption}\n\n{table.to_markdown(index=False)}\n{paper_block(prefix.name)}"
    paths[1].write_text(md, encoding="utf-8")
    paths[2].write_text(table.to_latex(index=False, caption=caption, float_format="%.2f"), encoding="utf-8")
    return paths
