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


def reward_histograms(scored: pd.DataFrame, cfg: FigureConfig, prefix: str | Path) -> list[Path]:
    """scored: one row per sample with columns method, reward (method 'demonstrations' included)."""
    demos = scored[scored["method"] == "demonstrations"]["reward"]
    methods = sorted((m for m in scored["method"].unique() if m != "demonstrations"), key=sort_key)
    lo, hi = scored["reward"].min(), scored["reward"].max()
    fig, axes = plt.subplots(1, len(methods), figsize=(cfg.panel_width * len(methods), 2.6),
                             sharex=True, sharey=True, squeeze=False)
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
    fig.tight_layout()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_suffix(".pdf"), prefix.with_suffix(".png")]
    for p in paths:
        fig.savefig(p, dpi=cfg.dpi)
    plt.close(fig)
    return paths
