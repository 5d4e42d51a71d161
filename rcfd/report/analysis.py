"""Analyses beside the paper's tables: whether training levelled off, Figure 4's front, RLOO next to
PPO, and the appendix tables (the alignment score's sensitivity to its estimator, each method's
calibration error decomposed)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from ..methods import parse_method, run_sort_key, sort_key
from ..utils import InputError
from .tables import HUMAN, summarise


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
                 "Pareto front (no sweep run as short and as rewarded), its R_RM minus the best R_RM of a sweep run "
                 "no longer than it (front gap; > 0: beyond the front, empty: shorter than every sweep run), its "
                 "distance to the demonstrations' point and to the front (the line through the front's points), both "
                 "in units of the demonstrations' length and |R_RM|, and which sweep run lies nearest the "
                 "demonstrations (the alpha a search would have found)")


def distance_to_polyline(point: np.ndarray, vertices: np.ndarray) -> float:
    """Euclidean distance from `point` to the polyline through `vertices` (rows, in order); to the
    vertex itself when there is one."""
    if len(vertices) == 1:
        return float(np.linalg.norm(point - vertices[0]))
    best = np.inf
    for a, b in zip(vertices[:-1], vertices[1:]):
        t = np.clip(np.dot(point - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0.0, 1.0)
        best = min(best, float(np.linalg.norm(point - (a + t * (b - a)))))
    return best


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
    scale = np.array([demo["mean_tokens"], abs(demo["avg_reward"]) or 1.0])  # the demonstrations' units
    front = sweep.loc[non_dominated(sweep)].sort_values("mean_tokens").to_numpy() / scale if len(sweep) else None
    to_demos = {m: float(np.linalg.norm((means.loc[m] - demo).to_numpy() / scale)) for m in means.index}
    nearest = min(sweep.index, key=to_demos.get) if len(sweep) else None
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
                     "front gap (R_RM)": point["avg_reward"] - shorter["avg_reward"].max() if len(shorter) else None,
                     "distance to demos": to_demos[m],
                     "distance to front": distance_to_polyline(point.to_numpy() / scale, front)
                     if front is not None else None,
                     "α run nearest demos": m == nearest})
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


@dataclass
class SensitivityConfig:
    """The appendix table of the alignment estimator's sensitivity: A recomputed from every run's
    per-sample rewards on a grid of histogram settings (rcfd.evaluate.metrics.AlignmentConfig)."""
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

    from ..evaluate.metrics import AlignmentConfig, alignment_score

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
    """Every sample counts (rcfd.evaluate.metrics.EMPTY_RULE): a scored file with a missing reward was
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
    (rcfd.evaluate.metrics.calibration_decomposition)."""
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


APPENDIX["calibration"] = CalibrationConfig()


def calibration_table(scored: pd.DataFrame, configured: dict, cfg: CalibrationConfig) -> pd.DataFrame:
    """scored: one row per sample (task, method, seed, id, reward), the demonstrations' rows
    included (their reward is each prompt's target); configured: task -> its AlignmentConfig
    settings (for the A column). One row per (task, method) but the demonstrations, the
    decomposition's terms as columns (mean over seeds)."""
    from ..evaluate.metrics import AlignmentConfig, alignment_score, calibration_decomposition

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
