"""RCfD's optimum (rcfd/report/predictability.py, docs/rcfd_optimum.md): the closed form checked
against a simulation, in seconds."""

import numpy as np
import pytest
from scipy import integrate, stats

from rcfd.evaluate.metrics import AlignmentConfig, alignment_score
from rcfd.report.predictability import optimum_alignment, rcfd_loss


def test_the_loss_decomposes_and_is_smallest_at_the_conditional_mean_with_no_spread():
    rng = np.random.default_rng(0)
    m, noise = 0.7, 0.3
    demo = m + rng.normal(0, np.sqrt(noise), 400_000)  # one prompt's demonstration rewards
    for mu, s in [(0.7, 0.0), (0.2, 0.0), (0.7, 0.5), (1.1, 0.2)]:
        policy = mu + s * rng.standard_normal(demo.size)  # independent of the demonstration's draw
        assert np.mean((policy - demo) ** 2) == pytest.approx(rcfd_loss(mu, s, m, noise), rel=0.01)
    grid_mu, grid_s = np.meshgrid(np.linspace(-1, 2, 61), np.linspace(0, 1, 21))
    loss = rcfd_loss(grid_mu, grid_s, m, noise)
    i = np.unravel_index(loss.argmin(), loss.shape)
    assert (grid_mu[i], grid_s[i]) == (pytest.approx(m), 0.0)


@pytest.mark.parametrize("r2", [0.9, 0.5, 0.2])
def test_closed_form_alignment_of_the_optimum(r2):
    # the closed form is the Gaussian KL, integrated numerically
    p, q = stats.norm(0, 1), stats.norm(0, np.sqrt(r2))
    kl = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -12, 12)[0]
    assert optimum_alignment(r2) == pytest.approx(kl, rel=1e-6)
    # a simulated population of prompts: demonstrations m(x) + eps, RCfD's optimum m(x) (its
    # conditional mean, no spread), scored with the workflow's alignment estimator on 50 bins; its
    # pseudo-counts cap the log-ratio in the demonstrations' tails, where the optimum has almost no
    # mass, so it reads up to ~13% low at R² = 0.2 (never high)
    rng = np.random.default_rng(1)
    m = rng.normal(0, np.sqrt(r2), 400_000)
    demo = m + rng.normal(0, np.sqrt(1 - r2), m.size)
    a = alignment_score(demo, m, AlignmentConfig(bins=50, smoothing=0.5))
    assert a == pytest.approx(optimum_alignment(r2), rel=0.15) and a <= 1.05 * optimum_alignment(r2)


def test_the_law_is_zero_when_the_prompt_tells_all_and_grows_as_it_tells_less():
    a = optimum_alignment([1.0, 0.8, 0.5, 0.2, 0.05])
    assert a[0] == 0 and np.all(np.diff(a) > 0)


# RCfD's energy-score variant (rewards.rcfd_energy_reward): a policy reward N(mu, s²) on a prompt whose
# demonstration reward is N(m, v). Expected score J = -E|R - R_d| + 1/2 E|R - R'| in closed form.
def _mean_abs(delta, sigma):
    """E|Z| for Z ~ N(delta, sigma²)."""
    return (sigma * np.sqrt(2 / np.pi) * np.exp(-delta ** 2 / (2 * sigma ** 2))
            + delta * (1 - 2 * stats.norm.cdf(-delta / sigma)))


def _energy_objective(mu, s, m, v):
    return -_mean_abs(mu - m, np.sqrt(s ** 2 + v)) + s / np.sqrt(np.pi)  # E|R - R'| = 2s / sqrt(pi)


def test_the_energy_score_is_best_at_the_demonstrations_conditional_distribution():
    m, v = 0.7, 0.3
    grid_mu, grid_s = np.meshgrid(np.linspace(-1, 2, 61), np.linspace(0, 1.5, 301))
    i = np.unravel_index(_energy_objective(grid_mu, grid_s, m, v).argmax(), grid_mu.shape)
    # RCfD's squared loss is best with no spread (test above); the energy score keeps the demonstrations'
    assert grid_mu[i] == pytest.approx(m) and grid_s[i] == pytest.approx(np.sqrt(v), abs=0.005)


def _rloo_gradient(mu, s, m, v, k, leave_one_out, n=400_000):
    """RLOO's policy-gradient estimate of (d/dmu, d/ds), on n prompts of k samples of N(mu, s²), with
    the energy rewards and the leave-one-out baseline TRL's RLOO uses."""
    import torch

    from rcfd.rewards import rcfd_energy_reward

    g = torch.Generator().manual_seed(0)
    r = mu + s * torch.randn(n, k, generator=g, dtype=torch.float64)
    reward = rcfd_energy_reward(r, m + np.sqrt(v) * torch.randn(n, generator=g, dtype=torch.float64), leave_one_out)
    advantage = reward - (reward.sum(-1, keepdim=True) - reward) / (k - 1)
    score = torch.stack([(r - mu) / s ** 2, ((r - mu) ** 2 - s ** 2) / s ** 3])  # d log N(r; mu, s²)
    return (advantage * score).mean((1, 2)).numpy()


@pytest.mark.parametrize("mu,s", [(0.3, 0.2), (0.0, 1.0), (0.5, 0.6)])
def test_rloo_on_the_energy_rewards_follows_the_energy_scores_gradient(mu, s):
    m, v, h = 0.0, 0.36, 1e-5
    exact = [(_energy_objective(mu + h, s, m, v) - _energy_objective(mu - h, s, m, v)) / (2 * h),
             (_energy_objective(mu, s + h, m, v) - _energy_objective(mu, s - h, m, v)) / (2 * h)]
    assert _rloo_gradient(mu, s, m, v, 4, True) == pytest.approx(exact, abs=0.01)
    # without the (k-1)/(k-2) correction the leave-one-out baseline removes a third of the spread's
    # gradient at k = 4 (at (0.5, 0.6) the spread would even shrink while it is below the demonstrations')
    biased = _rloo_gradient(mu, s, m, v, 4, False)
    assert biased[0] == pytest.approx(exact[0], abs=0.01) and abs(biased[1] - exact[1]) > 0.1


def _population(task, r2, n=2000, seeds=3, seed=0):
    """Scored samples of one prompt length: demonstrations m(x) + eps with Var m = r2; the base model
    whose per-prompt mean reward is m(x) (plus a little noise: its samples say what the prompt tells);
    'rcfd' at RCfD's optimum (m(x), almost no spread); 'sft' drawn as the demonstrations are."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    m = rng.normal(0, np.sqrt(r2), n)
    ids = [f"{task}-{i}" for i in range(n)]
    rows = [{"task": task, "method": "demonstrations", "seed": 0, "id": i, "reward": r}
            for i, r in zip(ids, m + rng.normal(0, np.sqrt(1 - r2), n))]
    for s in range(seeds):
        for method, spread, offset in (("base", 0.05, 0.0), ("rcfd", 0.01, 0.0), ("sft", np.sqrt(1 - r2), 0.0)):
            for _ in range(2):  # two samples a prompt
                rows += [{"task": task, "method": method, "seed": s, "id": i, "reward": r}
                         for i, r in zip(ids, m + offset + rng.normal(0, spread, n))]
    return pd.DataFrame(rows)


def test_predictability_table_measures_r2_and_finds_the_law(tmp_path):
    import pandas as pd

    from rcfd.report.plots import predictability_figure
    from rcfd.report.predictability import explained_fraction, predictability_table

    scored = pd.concat([_population("long", 0.8, seed=1), _population("short", 0.3, seed=2)])
    alignment = {"short": {"bins": 50, "smoothing": 0.5}, "long": {"bins": 50, "smoothing": 0.5}}
    levelled = {("short", "rcfd"): [True, False, True], ("long", "rcfd"): [True] * 3}
    table = predictability_table(scored, {"short": 10, "long": 30}, alignment, levelled)
    table = table.set_index(["prompt tokens", "method"])
    assert table.loc[(10, "RCfD"), "levelled off"] == "2/3" and table.loc[(10, "SFT"), "levelled off"] == ""
    assert list(table.index.get_level_values(0).unique()) == [10, 30]  # by prompt length
    for tokens, r2 in ((10, 0.3), (30, 0.8)):
        rcfd, sft = table.loc[(tokens, "RCfD")], table.loc[(tokens, "SFT")]
        assert rcfd["R²"] == pytest.approx(r2, abs=0.05) and rcfd["seeds"] == 3
        assert rcfd["between/demo"] == pytest.approx(r2, abs=0.07) and rcfd["within/demo"] < 0.01
        assert rcfd["A ↓"] == pytest.approx(rcfd["optimum A (estimator)"], rel=0.25) and sft["A ↓"] < 0.05
        assert sft["between/demo"] + sft["within/demo"] == pytest.approx(1, abs=0.1)
    assert table.loc[(10, "RCfD"), "A ↓"] > table.loc[(30, "RCfD"), "A ↓"]  # less predictable, worse A
    paths = predictability_figure(table.reset_index(), tmp_path / "predictability")
    assert all(p.stat().st_size > 0 for p in paths)
    # a predictor that tells nothing: held-out R² about 0, never the in-sample optimism
    rng = np.random.default_rng(3)
    d = pd.Series(rng.normal(size=300))
    assert explained_fraction(d, pd.Series(rng.normal(size=300))) < 0.02
