"""Figure 4's Pareto front: which points of the α sweep it joins."""

import pandas as pd

from rcfd.plots import non_dominated


def test_non_dominated_keeps_the_shortest_for_each_reward_level():
    points = pd.DataFrame({"mean_tokens": [80, 80, 39, 35.5, 60, 39],
                           "avg_reward": [1.04, 1.21, 1.02, 0.32, 0.9, 0.5]},
                          index=["beta0", "alpha0.015", "alpha0.01", "alpha0.02", "dominated", "tie_worse"])
    # beta0 is beaten at equal length by alpha0.015; "dominated" by alpha0.01 (shorter and better);
    # tie_worse by alpha0.01 at equal length
    assert non_dominated(points) == ["alpha0.015", "alpha0.01", "alpha0.02"]
    assert non_dominated(points.iloc[:1]) == ["beta0"]
    twins = pd.DataFrame({"mean_tokens": [40, 40], "avg_reward": [1.0, 1.0]}, index=["a", "b"])
    assert non_dominated(twins) == ["a", "b"]  # equal points do not beat each other
