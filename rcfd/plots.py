"""Figures. Figure 3: per-method reward histograms against the demonstrations' (with means)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: workflow jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .methods import parse_method, sort_key  # noqa: E402


@dataclass
class FigureConfig:
    name: str = "figure3"
    bins: int = 20
    panel_width: float = 2.6
    dpi: int = 150


# judge-score columns of the metrics rows shown under the histograms: column -> axis label
JUDGE_PROXIES = {"success_vader": "success (VADER)", "loglik_base": "naturalness (base log-lik)"}


def reward_histograms(scored: pd.DataFrame, metrics: pd.DataFrame, cfg: FigureConfig,
                      prefix: str | Path) -> list[Path]:
    """Top: one panel per method, its reward histogram over the demonstrations' (dashed: means).
    Bottom: the judge proxies per method, the demonstrations' value as a dashed line.

    scored: one row per sample (method, reward); metrics: one row per (method, seed)."""
    demos = scored[scored["method"] == "demonstrations"]["reward"]
    methods = sorted((m for m in scored["method"].unique() if m != "demonstrations"), key=sort_key)
    lo, hi = scored["reward"].min(), scored["reward"].max()
    n = len(methods)
    fig = plt.figure(figsize=(cfg.panel_width * n, 5.4))
    grid = fig.add_gridspec(2, max(n, 2))
    axes = [[fig.add_subplot(grid[0, i]) for i in range(n)]]
    palette = sns.color_palette("colorblind")
    for ax, m in zip(axes[0], methods):
        r = scored[scored["method"] == m]["reward"]
        kw = dict(bins=cfg.bins, binrange=(lo, hi), stat="density", ax=ax, element="step")
        sns.histplot(demos, color=palette[7], alpha=0.35, label="demonstrations", **kw)
        sns.histplot(r, color=palette[0], alpha=0.5, label=parse_method(m).label, **kw)
        ax.axvline(demos.mean(), color=palette[7], ls="--", lw=1)
        ax.axvline(r.mean(), color=palette[0], ls="--", lw=1)
        ax.set_title(parse_method(m).label, fontsize=9)
        ax.set_xlabel("reward")
    axes[0][0].legend(fontsize=7, loc="upper left")
    _judge_bars(fig, grid, metrics, methods, palette)
    fig.tight_layout()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_suffix(".pdf"), prefix.with_suffix(".png")]
    for p in paths:
        fig.savefig(p, dpi=cfg.dpi)
    plt.close(fig)
    return paths


def _judge_bars(fig, grid, metrics: pd.DataFrame, methods: list[str], palette) -> None:
    half = max(len(methods), 2) // 2
    means = metrics.groupby("method")[list(JUDGE_PROXIES)].mean()
    for i, (col, label) in enumerate(JUDGE_PROXIES.items()):
        ax = fig.add_subplot(grid[1, i * half:(i + 1) * half])
        values = [means.loc[m, col] for m in methods]
        ax.bar([parse_method(m).label for m in methods], values, color=palette[0], alpha=0.7)
        if "demonstrations" in means.index:
            ax.axhline(means.loc["demonstrations", col], color=palette[7], ls="--", lw=1, label="demonstrations")
            ax.legend(fontsize=7)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
