"""RCfD's optimum as a law of how well the prompt predicts its demonstration's reward
(docs/rcfd_optimum.md has the derivation).

RCfD maximises −E[(R(x, y) − R(x, y_d))²]. Write the demonstration's reward as
R_d = m(x) + ε with m(x) = E[R_d | x] and ε the part the prompt does not tell (E[ε | x] = 0).
For a policy whose reward on prompt x has mean μ(x) and variance s²(x),

    E[(R − R_d)²] = E_x[(μ(x) − m(x))² + s²(x)] + E[ε²],

so the optimum sets μ(x) = m(x) and s(x) = 0: the policy's pooled rewards are distributed as m(x),
whose variance is R² · Var(R_d), R² = Var(m(x)) / Var(R_d) being the fraction of the demonstrations'
reward variance the prompt explains. The alignment score A = KL(ρ_demo ‖ ρ_policy) of that optimum,
for Gaussian rewards, depends on R² alone (`optimum_alignment`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..utils import InputError
from .tables import HUMAN


def optimum_alignment(r2):
    """A = KL(N(μ, σ²) ‖ N(μ, R² σ²)) = ½ (1/R² − 1 + ln R²) nats: the alignment score of RCfD's
    optimum when rewards are Gaussian and the prompt explains the fraction R² of the demonstrations'
    reward variance (0 at R² = 1, unbounded as R² → 0)."""
    r2 = np.asarray(r2, float)
    return 0.5 * (1 / r2 - 1 + np.log(r2))


def rcfd_loss(mu, s, m, noise_var):
    """E[(R − R_d)²] for a policy reward N(mu, s²) on a prompt whose demonstration reward has
    conditional mean m and conditional variance noise_var: (mu − m)² + s² + noise_var."""
    return (np.asarray(mu) - m) ** 2 + np.asarray(s) ** 2 + noise_var


def estimated_optimum_alignment(r2: float, n_demo: int, n_policy: int, alignment: dict, draws: int = 20,
                                seed: int = 0) -> float:
    """RCfD's optimum as the workflow's estimator reads it at the run's sample sizes: mean A over
    `draws` simulated runs, `n_demo` demonstration rewards N(0, 1) against `n_policy` rewards of
    the optimum N(0, R²) (`alignment`: the AlignmentConfig settings). A histogram estimator on a
    few hundred samples is biased (upwards where the closed form is small): this is the reference a
    measured A can be held against."""
    from ..evaluate.metrics import AlignmentConfig, alignment_score

    rng, cfg = np.random.default_rng(seed), AlignmentConfig(**alignment)
    r2 = min(max(r2, 1e-3), 1.0)
    return float(np.mean([alignment_score(rng.normal(0, 1, n_demo), rng.normal(0, np.sqrt(r2), n_policy), cfg)
                          for _ in range(draws)]))


# ---------------------------------------------------------------- the law on real runs (`snakemake predictability`)
CAPTION = ("RCfD's optimum as a law of prompt predictability (docs/rcfd_optimum.md): the movie-review use case at "
           "several prompt lengths (the demonstration: the next tokens of the review; the reward model trained on "
           "the prefixes it scores). R²: the held-out fraction of the evaluation demonstrations' reward variance "
           "that the base model's mean sample reward per prompt explains (5-fold linear regression, a lower bound "
           "on what the prompt tells); levelled off: the RL runs whose training R_RM levelled off (the training "
           "table's criterion), of the seeds; A ↓ mean ± 95% half-width over seeds; corr: the samples' reward vs their "
           "own demonstration's; between/demo and within/demo: the variance of the per-prompt mean reward and the "
           "mean within-prompt variance, over the demonstrations' reward variance (the optimum: R² and 0); "
           "RCfD's optimum for Gaussian rewards: its A in closed form, ½(1/R² − 1 + ln R²), and as the histogram "
           "estimator reads it at this run's sample sizes (mean of 20 simulated runs; the measured A's reference)")


def explained_fraction(demos: pd.Series, predictor: pd.Series, folds: int = 5, seed: int = 0) -> float:
    """R² of a held-out linear regression of the demonstrations' reward (`demos`, by prompt id) on a
    prompt-level predictor (`predictor`, by prompt id), `folds`-fold: 1 − Σ(d − d̂)² / Σ(d − mean d).
    Held out, so a predictor that tells nothing scores about 0 (slightly below), not above."""
    ids = demos.index.intersection(predictor.index)
    if len(ids) < 2 * folds:
        raise InputError(f"predictability: {len(ids)} prompts have both a demonstration and a predictor; "
                         f"{2 * folds} needed for {folds}-fold R²")
    d, x = demos.loc[ids].to_numpy(float), predictor.loc[ids].to_numpy(float)
    fold = np.random.default_rng(seed).permutation(len(ids)) % folds
    fitted = np.empty_like(d)
    for k in range(folds):
        train = fold != k
        slope, intercept = np.polyfit(x[train], d[train], 1)
        fitted[~train] = slope * x[~train] + intercept
    return float(1 - np.sum((d - fitted) ** 2) / np.sum((d - d.mean()) ** 2))


def predictability_table(scored: pd.DataFrame, prompt_tokens: dict[str, int], alignment: dict[str, dict],
                         levelled: dict[tuple[str, str], list[bool]] | None = None, folds: int = 5) -> pd.DataFrame:
    """scored: one row per sample (task, method, seed, id, reward), each task a prompt length
    (`prompt_tokens`: task -> its prompt's tokens) with its demonstrations' rows and the base
    model's; alignment: task -> its AlignmentConfig settings; levelled: (task, method) -> per seed,
    whether its training R_RM levelled off (rcfd.report.analysis.plateau). One row per (prompt
    length, method)."""
    from ..evaluate.metrics import AlignmentConfig, alignment_score, calibration_decomposition
    from ..methods import parse_method, sort_key
    from .tables import ci95

    rows = []
    for task, frame in sorted(scored.groupby("task", sort=False), key=lambda kv: prompt_tokens[kv[0]]):
        demos = frame[frame["method"] == HUMAN].drop_duplicates("id").set_index("id")["reward"]
        base = frame[frame["method"] == "base"]
        if demos.empty or base.empty:
            raise InputError(f"predictability: task {task!r} needs the demonstrations' and the base model's scored samples")
        r2 = explained_fraction(demos, base.groupby("id")["reward"].mean(), folds)
        runs = frame[frame["method"] != HUMAN]
        for method in sorted(runs["method"].unique(), key=sort_key):
            seeds = []
            for _, run in runs[runs["method"] == method].groupby("seed"):
                terms = calibration_decomposition(run["id"], run["reward"], demos.loc[run["id"]].to_numpy())
                a = alignment_score(demos, run["reward"], AlignmentConfig(**alignment[task]))
                seeds.append({"A": a, "corr": terms["corr"], "between": terms["var_between"] / terms["var_demo"],
                              "within": terms["var_within"] / terms["var_demo"]})
            s = pd.DataFrame(seeds)
            rows.append({"prompt tokens": prompt_tokens[task], "method": parse_method(method).label, "R²": r2,
                         "levelled off": _share((levelled or {}).get((task, method))),
                         "A ↓": s["A"].mean(), "A ±": ci95(s["A"]), "corr": s["corr"].mean(),
                         "between/demo": s["between"].mean(), "within/demo": s["within"].mean(), "seeds": len(s),
                         "optimum A (closed form)": float(optimum_alignment(min(max(r2, 1e-3), 1.0))),
                         "optimum A (estimator)": estimated_optimum_alignment(
                             r2, len(demos), len(runs[runs["method"] == method]) // len(s), alignment[task])})
    return pd.DataFrame(rows).round(3)


def _share(flags: list[bool] | None) -> str:
    """'2/3': how many seeds' training levelled off ('' for a method that is not trained by RL)."""
    return f"{sum(flags)}/{len(flags)}" if flags else ""
