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
