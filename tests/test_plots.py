"""Figure 4: which points of the α sweep its front joins, and which share a label; figures are
the same bytes when drawn twice."""

import time

import pandas as pd

from rcfd.plots import demo_reward_histogram, label_groups, non_dominated


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


def test_points_on_top_of_each_other_share_one_label():
    points = pd.DataFrame({"mean_tokens": [80.0, 80.0, 35.3, 80.0], "avg_reward": [1.24, 1.28, 0.57, 1.25]},
                          index=["beta0", "alpha0.015", "alpha0.02", "alpha0.005"])
    assert label_groups(points) == [["alpha0.015", "alpha0.005", "beta0"], ["alpha0.02"]]


def test_a_figure_drawn_twice_is_the_same_bytes(tmp_path):
    # The SLURM test compares every output of two runs byte for byte, the PDFs among them.
    first = demo_reward_histogram([0.1, 0.5, 2.0, 1.2], tmp_path / "a", "demos")
    time.sleep(1.1)  # a CreationDate would differ by a second
    second = demo_reward_histogram([0.1, 0.5, 2.0, 1.2], tmp_path / "b", "demos")
    for x, y in zip(first, second):
        assert x.read_bytes() == y.read_bytes(), x.name
