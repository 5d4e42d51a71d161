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
