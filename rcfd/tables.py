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
    # metric column -> header, in order (the paper's columns first, then what the project adds)
    columns: dict = field(default_factory=dict)
    decimals: int = 2


TABLES = {
    "table6": TableConfig(
        name="table6", task="movies",
        caption="Table 6 (movie reviews): alignment score A, average reward, judge proxies, length and diversity",
        columns={"alignment": "A ↓", "avg_reward": "avg R", "success_vader": "success (VADER)",
                 "loglik_base": "naturalness (log-lik)", "mean_tokens": "length",
                 "distinct_2": "distinct-2", "self_bleu": "self-BLEU"}),
    "table5": TableConfig(
        name="table5", task="wiki",
        caption="Table 5 (Wikipedia, reward = average log-likelihood under the initial model): alignment score A "
                "of the log-likelihood distributions, average log-likelihood, repetition and diversity, "
                "generations of the evaluation length",
        columns={"alignment": "A ↓", "avg_reward": "log-lik", "seq_rep_4": "seq-rep-4 ↓ (naturalness proxy)",
                 "mean_tokens": "length", "distinct_2": "distinct-2", "self_bleu": "self-BLEU"}),
    "table1": TableConfig(
        name="table1", task="summaries",
        caption="Table 1 (summarisation): preference reward R_RM, length (policy tokens), alignment score A of the "
                "R_RM distribution, A averaged over R_RM and length (the paper's A with two rewards), diversity",
        columns={"avg_reward": "R_RM", "mean_tokens": "length", "alignment": "A ↓",
                 "alignment_two": "A (R_RM, length) ↓", "distinct_2": "distinct-2", "self_bleu": "self-BLEU"}),
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


def build_table(metrics: pd.DataFrame, cfg: TableConfig) -> pd.DataFrame:
    """Mean over seeds per method, in the paper's row order; one column per configured metric."""
    df = metrics[metrics["task"] == cfg.task]
    missing = [c for c in cfg.columns if c not in df.columns]
    if missing:
        raise InputError(f"{cfg.name}: metrics lack column(s) {missing}")
    grouped = df.groupby("method")
    table = grouped[list(cfg.columns)].mean()
    table["seeds"] = grouped["seed"].nunique()
    table = table.loc[sorted(table.index, key=sort_key)]
    table.insert(0, "method", [parse_method(m).label for m in table.index])
    table = table.reset_index(drop=True).rename(columns=cfg.columns)
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
