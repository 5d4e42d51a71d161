"""The paper's figures, one function each, registered in FIGURES by name.

figure3  movie reviews: per-method reward histograms over the demonstrations' (means dashed),
         and the judge proxies per method
figure2  use case 1: log-likelihood per generated position (base, SFT, R beta=0, RCfD, human),
         the training length marked, so one sees what happens beyond it
figure5  use case 1, decoding baselines of the base model: the same curve, and the distribution
         of per-sequence log-likelihood
figure4  use case 3: average R_RM against average length over the R_alpha sweep (the front), with
         the demonstrations' point and RCfD's (one and two rewards)

With two or more seeds, what is summarised per method shows its spread over seeds as a 95%
confidence interval of the mean (Student t, rcfd.report.tables.ci95): error bars on the judge-proxy
bars and on the front's points, a shaded band around the log-likelihood curves and around each
histogram's mean line. Histograms and densities pool the samples of every seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: workflow jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..methods import parse_method, run_sort_key, sort_key, split_run  # noqa: E402
from ..utils import atomic  # noqa: E402
from .analysis import FRONT_CAPTION, front_table, in_alpha_sweep, non_dominated, plateau  # noqa: E402
from .tables import CI, ci95, summarise  # noqa: E402


@dataclass
class FigureConfig:
    bins: int = 20
    panel_width: float = 2.6
    dpi: int = 150


STYLE = FigureConfig()
HUMAN = "demonstrations"


# judge-score columns of the metrics rows shown under the histograms: column -> axis label
JUDGE_PROXIES = {"success_vader": "success (VADER)", "loglik_base": "naturalness (base log-lik)"}


def reward_histograms(scored: pd.DataFrame, metrics: pd.DataFrame, prefix: str | Path,
                      cfg: FigureConfig = STYLE, **_) -> list[Path]:
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
        half = ci95(scored[scored["method"] == m].groupby("seed")["reward"].mean())  # NaN: one seed
        if half > 0:
            ax.axvspan(r.mean() - half, r.mean() + half, color=palette[0], alpha=0.15, lw=0)
        ax.set_title(parse_method(m).label, fontsize=9)
        ax.set_xlabel("reward")
    axes[0][0].legend(fontsize=7, loc="upper left")
    _judge_bars(fig, grid, metrics, methods, palette)
    return _save(fig, prefix, cfg)


def demo_reward_histogram(rewards, prefix: str | Path, title: str, cfg: FigureConfig = STYLE) -> list[Path]:
    """The reward model's scores of the demonstrations: where they pile up (a ceiling shows as a spike)."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    sns.histplot(rewards, bins=cfg.bins * 2, ax=ax, color=sns.color_palette("colorblind")[7], element="step")
    ax.set_xlabel("reward of the demonstration")
    ax.set_title(title, fontsize=9)
    return _save(fig, prefix, cfg)


# the rows of the training-curve figure: train_log.csv column -> (axis label, the demonstrations'
# column in demos_scored.jsonl that gives its reference line). The objective is TRL's `reward`;
# the monitors are the batch's raw R_RM and length (rewards.log_monitors), whatever the objective.
TRAINING_ROWS = {
    "reward": ("training objective", None),
    "monitor/reward_model": ("R_RM of the samples", "demo_reward"),
    "monitor/length": ("length (policy tokens)", "demo_tokens"),
}


def training_curves(logs: dict[str, pd.DataFrame], prefix: str | Path, demos: dict[str, float] | None = None,
                    window: int = 6, cfg: FigureConfig = STYLE) -> list[Path]:
    """One column per RL run, one row per logged quantity: the training objective TRL logged per
    step (R_RM, R_alpha or the RCfD reward, before the KL term) and, where the log has them, the
    samples' raw R_RM and length; each with its running mean over `window` steps and, in the
    title, the change of the mean between the last two quarters of training (about 0 at a
    plateau; compare with the per-step spread, also given). `demos`: the training
    demonstrations' mean of a row's reference column (dashed), the target RCfD pulls towards."""
    names = sorted(logs, key=run_sort_key)
    rows = [c for c in TRAINING_ROWS if any(c in logs[n] and logs[n][c].notna().any() for n in names)]
    fig, axes = plt.subplots(len(rows), len(names), figsize=(3.2 * len(names), 2.6 * len(rows)), squeeze=False)
    for j, name in enumerate(names):
        for i, column in enumerate(rows):
            ax, label, ref = axes[i][j], *TRAINING_ROWS[column]
            log = logs[name].dropna(subset=[column]) if column in logs[name] else logs[name].iloc[:0]
            if j == 0:
                ax.set_ylabel(label)
            if log.empty:  # a run logged before the monitors existed
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
                ax.set_xticks([]), ax.set_yticks([])
                continue
            ax.plot(log["step"], log[column], lw=0.6, alpha=0.4, color="grey")
            ax.plot(log["step"], log[column].rolling(window, min_periods=1).mean(), lw=1.4)
            if ref and demos and ref in demos:
                ax.axhline(demos[ref], color="black", ls="--", lw=1, label="demonstrations")
            title = plateau_note(log[column])
            method, seed = split_run(name)
            run = f"{parse_method(method).label} {seed}".strip()
            ax.set_title(f"{run}\n{title}" if i == 0 else title, fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel("RL step")
    return _save(fig, prefix, cfg)


def plateau_note(reward: pd.Series) -> str:
    """'Δ last quarter +0.05 ± 0.04, step sd 0.31': the change of the mean from the third to the
    last quarter of the steps, its standard error and the per-step spread (rcfd.report.analysis.plateau)."""
    p = plateau(reward)
    return f"Δ last quarter {p['delta']:+.2f} ± {p['se']:.2f}, step sd {p['sd']:.2f}"


def _save(fig, prefix: str | Path, cfg: FigureConfig) -> list[Path]:
    fig.tight_layout()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_suffix(".pdf"), prefix.with_suffix(".png")]
    for p in paths:
        # No CreationDate in the PDF: the same figure is then the same bytes on every run.
        with atomic(p) as tmp:
            fig.savefig(tmp, format=p.suffix[1:], dpi=cfg.dpi,
                        metadata={"CreationDate": None} if p.suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def _curve_panel(ax, curves: pd.DataFrame, methods: list[str], train_tokens: int | None) -> None:
    """Mean log-likelihood per token against generated position, one line per method (mean over
    seeds, a band of the 95% CI over seeds where there are several), the human text dashed; a
    dotted line at the RL training length."""
    palette = sns.color_palette("colorblind")
    for i, m in enumerate(methods):
        c = summarise(curves[curves["method"] == m], "start", ["end", "mean_logprob"]).sort_index()
        human = m == HUMAN
        x, color = (c.index + c["end"]) / 2, "black" if human else palette[i]
        ax.plot(x, c["mean_logprob"], marker="" if human else ".", ls="--" if human else "-", color=color,
                label="human" if human else parse_method(m).label)
        if c["mean_logprob" + CI].notna().any():
            half = c["mean_logprob" + CI].fillna(0)
            ax.fill_between(x, c["mean_logprob"] - half, c["mean_logprob"] + half, color=color, alpha=0.15, lw=0)
    if train_tokens:
        ax.axvline(train_tokens, color="grey", ls=":", lw=1)
        ax.annotate("training length", (train_tokens, 0.02), xycoords=("data", "axes fraction"),
                    fontsize=7, color="grey", ha="right", rotation=90)
    ax.set_xlabel("generated position (tokens)")
    ax.set_ylabel("log-likelihood per token (initial model)")
    ax.legend(fontsize=7)


def _present(frame: pd.DataFrame, wanted: list[str]) -> list[str]:
    return [m for m in wanted if m in set(frame["method"])]


def loglik_curves(curves: pd.DataFrame, prefix: str | Path, train_tokens: int | None = None,
                  cfg: FigureConfig = STYLE, **_) -> list[Path]:
    """Figure 2: log-likelihood vs generation length for base, SFT, R beta=0, RCfD and human text."""
    methods = _present(curves, ["base", "sft", "beta0", "rcfd", HUMAN])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    _curve_panel(ax, curves, methods, train_tokens)
    ax.set_title("Log-likelihood along the generation", fontsize=9)
    return _save(fig, prefix, cfg)


def decoding_baselines(curves: pd.DataFrame, scored: pd.DataFrame, prefix: str | Path,
                       train_tokens: int | None = None, cfg: FigureConfig = STYLE, **_) -> list[Path]:
    """Figure 5: the base model's decoding baselines (and RCfD): log-likelihood along the
    generation, and the distribution of per-sequence log-likelihood against the human text's."""
    decoding = sorted((m for m in set(curves["method"]) if parse_method(m).kind == "decoding"), key=sort_key)
    methods = _present(curves, ["base", *decoding, "rcfd", HUMAN])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    _curve_panel(left, curves, methods, None)
    palette = sns.color_palette("colorblind")
    for i, m in enumerate(methods):
        r = scored[scored["method"] == m]["reward"].dropna()
        human = m == HUMAN
        sns.kdeplot(r, ax=right, ls="--" if human else "-", color="black" if human else palette[i],
                    label="human" if human else parse_method(m).label, warn_singular=False, cut=0)
    right.set_xlabel("per-sequence log-likelihood (initial model)")
    right.legend(fontsize=7)
    left.set_title("Decoding baselines: log-likelihood along the generation", fontsize=9)
    right.set_title("Distribution of sequence log-likelihood", fontsize=9)
    return _save(fig, prefix, cfg)


def pareto_front(metrics: pd.DataFrame, prefix: str | Path, cfg: FigureConfig = STYLE, **_) -> list[Path]:
    """Figure 4: (length, R_RM) per method, mean over seeds (error bars: 95% CI over seeds, where
    there are several). The R_alpha sweep (with R beta=0 as alpha = 0) is scattered and its
    non-dominated points are joined as its Pareto front; every other method is a labelled point."""
    cols = ["mean_tokens", "avg_reward"]
    stats = summarise(metrics, "method", cols)
    means = stats[cols]
    sweep = sorted((m for m in means.index if in_alpha_sweep(m)),
                   key=lambda m: parse_method(m).alpha)
    fig, ax = plt.subplots(figsize=(7, 4))
    palette = sns.color_palette("colorblind")
    if sweep:
        ax.scatter(means.loc[sweep, "mean_tokens"], means.loc[sweep, "avg_reward"], color=palette[0],
                   label="R α sweep (α=0 is R β=0)", zorder=3)
        front = means.loc[non_dominated(means.loc[sweep])].sort_values("mean_tokens")
        ax.plot(front["mean_tokens"], front["avg_reward"], "-", color=palette[0], label="its Pareto front")
        for group in label_groups(means.loc[sweep]):  # one label for points that sit on each other
            alphas = ", ".join(f"{parse_method(m).alpha:g}" for m in group)
            ax.annotate(f"α={alphas}", means.loc[group[0], ["mean_tokens", "avg_reward"]],
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
    for i, m in enumerate(sorted((m for m in means.index if m not in sweep), key=sort_key)):
        human = m == HUMAN
        ax.scatter(*means.loc[m, ["mean_tokens", "avg_reward"]], marker="*" if human else "s",
                   s=160 if human else 50, color="black" if human else palette[(i + 1) % len(palette)],
                   label=parse_method(m).label, zorder=3)
    if stats[[c + CI for c in cols]].notna().any().any():
        ax.errorbar(stats["mean_tokens"], stats["avg_reward"], xerr=stats["mean_tokens" + CI].fillna(0),
                    yerr=stats["avg_reward" + CI].fillna(0), fmt="none", ecolor="grey", elinewidth=1, capsize=2, zorder=2)
    ax.set_xlabel("average length (policy tokens)")
    ax.set_ylabel("average R_RM")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("Reward vs length: the α front and RCfD", fontsize=9)
    fig.tight_layout()
    return _save(fig, prefix, cfg)


def label_groups(points: pd.DataFrame, frac: float = 0.06) -> list[list]:
    """Groups of index labels whose (x, y) lie within `frac` of each axis' range of one another,
    each group ordered by descending y (its top point first, where the label goes)."""
    span = (points.max() - points.min()).replace(0, 1.0)
    groups: list[list] = []
    for m in points.sort_values(points.columns[1], ascending=False).index:
        home = next((g for g in groups if ((points.loc[g[-1]] - points.loc[m]).abs() / span <= frac).all()), None)
        if home is None:
            groups.append([m])
        else:
            home.append(m)
    return groups


@dataclass(frozen=True)
class Figure:
    task: str  # the use case whose runs it draws
    draw: Callable[..., list[Path]]
    # the figure's numbers as a table (results/tables/<figure>.*), where reading them off the plot is not enough
    table: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    caption: str = ""


# the paper's figures this workflow draws (each a rule of workflow/rules/report.smk)
FIGURES = {"figure3": Figure("movies", reward_histograms), "figure2": Figure("wiki", loglik_curves),
           "figure5": Figure("wiki", decoding_baselines),
           "figure4": Figure("summaries", pareto_front, front_table, FRONT_CAPTION)}


def _judge_bars(fig, grid, metrics: pd.DataFrame, methods: list[str], palette) -> None:
    half = max(len(methods), 2) // 2
    means = summarise(metrics, "method", list(JUDGE_PROXIES))
    for i, (col, label) in enumerate(JUDGE_PROXIES.items()):
        ax = fig.add_subplot(grid[1, i * half:(i + 1) * half])
        values, spread = [means.loc[m, col] for m in methods], [means.loc[m, col + CI] for m in methods]
        errors = dict(yerr=[0 if e != e else e for e in spread], capsize=3) if any(e == e for e in spread) else {}
        ax.bar([parse_method(m).label for m in methods], values, color=palette[0], alpha=0.7, **errors)
        if "demonstrations" in means.index:
            ax.axhline(means.loc["demonstrations", col], color=palette[7], ls="--", lw=1, label="demonstrations")
            ax.legend(fontsize=7)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(axis="x", labelsize=7, rotation=30)


def gold_vs_proxy_figure(table: pd.DataFrame, questions: list[str], curves: list[str], prefix: str | Path,
                         cfg: FigureConfig = STYLE) -> list[Path]:
    """One panel per gold question: gold (y) against proxy (x); each method of `curves` as a line
    through its snapshots from the base model (step 0) to its end of training, step numbers beside the
    points; every other method as a point at its end of training (± 95% CI); the demonstrations as
    dashed lines. `table`: rcfd.report.gold.gold_vs_proxy."""
    from .tables import CI

    fig, axes = plt.subplots(1, max(1, len(questions)), figsize=(5 * max(1, len(questions)), 4), squeeze=False)
    base = table[table["method"] == "base"]
    for ax, q in zip(axes[0], questions or [None]):
        for method, group in table.groupby("method", sort=False):
            if method == "demonstrations":
                ax.axvline(group["R_RM"].iloc[0], ls="--", c="gray", lw=1)
                if q:
                    ax.axhline(group[q].iloc[0], ls="--", c="gray", lw=1, label="demonstrations")
                continue
            if q is None:
                continue
            if method in curves:
                path = pd.concat([base, group]).sort_values("step")
                line, = ax.plot(path["R_RM"], path[q], marker="o", label=group["label"].iloc[0])
                for _, r in path.iterrows():
                    ax.annotate(str(r["step"]), (r["R_RM"], r[q]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points", color=line.get_color())
            else:
                ax.errorbar(group["R_RM"], group[q], xerr=group["R_RM" + CI], yerr=group[q + CI], fmt="s",
                            ms=4, capsize=2, label=group["label"].iloc[0], alpha=0.8)
        ax.set_xlabel("proxy: mean R_RM")
        ax.set_ylabel(f"gold: judge {q} (mean soft score)" if q else "no validated gold question")
        ax.legend(fontsize=7)
    fig.suptitle("Gold vs proxy (over-optimisation: proxy up, gold down)", fontsize=10)
    return _save(fig, prefix, cfg)


def predictability_figure(table: pd.DataFrame, prefix: str | Path, cfg: FigureConfig = STYLE) -> list[Path]:
    """A against R² (how much of its demonstration's reward the prompt predicts), one line per method
    through its prompt lengths (error bars: 95% CI over seeds), RCfD's closed-form optimum dashed and
    as the estimator reads it at the run's sample sizes (crosses): `table` is
    rcfd.report.predictability.predictability_table."""
    import numpy as np

    from .predictability import optimum_alignment

    fig, ax = plt.subplots(figsize=(6, 4))
    palette = sns.color_palette("colorblind")
    for i, (method, rows) in enumerate(table.groupby("method", sort=False)):
        rows = rows.sort_values("R²")
        ax.errorbar(rows["R²"], rows["A ↓"], yerr=rows["A ±"].fillna(0), fmt="o-", color=palette[i % len(palette)],
                    capsize=3, label=method)
        for _, r in rows.iterrows():
            ax.annotate(f"{r['prompt tokens']:g}", (r["R²"], r["A ↓"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    grid = np.linspace(max(table["R²"].min() * 0.8, 0.02), 1, 200)
    ax.plot(grid, optimum_alignment(grid), "k--", lw=1, label="RCfD's optimum (closed form)")
    reference = table.drop_duplicates("prompt tokens")
    ax.scatter(reference["R²"], reference["optimum A (estimator)"], marker="x", color="black", zorder=3,
               label="RCfD's optimum, as the estimator\nreads it at this run's sample sizes")
    top = max(table["A ↓"].max() + table["A ±"].fillna(0).max(), table["optimum A (estimator)"].max(), 0.05)
    ax.set_ylim(0, top * 1.2)
    ax.set_xlabel("R²: demonstration reward explained by the prompt (held out)")
    ax.set_ylabel("alignment score A ↓")
    ax.set_title("A against prompt predictability (numbers: prompt tokens)", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, prefix, cfg)
