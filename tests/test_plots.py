"""Figure 4: which points of the α sweep its front joins, and which share a label; figures are
the same bytes when drawn twice."""

import time

import pandas as pd

from rcfd.report.plots import demo_reward_histogram, label_groups, non_dominated


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


def test_training_curves_draw_the_objective_and_the_monitors(tmp_path, monkeypatch):
    """One column per run, one row per logged quantity: the objective always, the raw R_RM and
    length where a log has them (a run without them leaves its panels empty), the training
    demonstrations' means as dashed lines on the monitors' rows."""
    import rcfd.report.plots as plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, prefix, cfg: figures.append(fig) or [])
    steps = list(range(1, 9))
    monitored = pd.DataFrame({"step": steps, "reward": [-1.0] * 8, "monitor/reward_model": [0.5] * 8,
                              "monitor/length": [20.0] * 8})
    old = pd.DataFrame({"step": steps, "reward": [0.1 * s for s in steps]})  # a log from before the monitors
    plots.training_curves({"rcfd": monitored, "beta0": old}, tmp_path / "t", {"demo_reward": 0.7, "demo_tokens": 27.5})
    axes = figures[0].axes
    assert len(axes) == 6  # 3 rows x 2 runs
    grid = {(round(ax.get_position().y0, 2), round(ax.get_position().x0, 2)): ax for ax in axes}
    rows = [[grid[k] for k in sorted(grid) if k[0] == y] for y in sorted({k[0] for k in grid}, reverse=True)]
    labels = [row[0].get_ylabel() for row in rows]
    assert labels == ["training objective", "R_RM of the samples", "length (policy tokens)"]
    beta0, rcfd = rows[0]  # sorted as the tables sort methods: R beta=0 before RCfD
    assert "Δ last quarter +0.20" in beta0.get_title() and not rows[1][0].lines  # beta0 has no monitors
    dashed = [line.get_ydata()[0] for row in rows[1:] for line in row[1].lines if line.get_linestyle() == "--"]
    assert dashed == [0.7, 27.5]
    assert not [line for line in rcfd.lines if line.get_linestyle() == "--"]  # no target drawn for the objective


def test_training_curves_keep_every_seed_of_a_method(tmp_path):
    """`python -m rcfd training_curves` over several seeds of one method: one column and one table
    row per (method, seed), none hiding another (they were keyed by method alone); one seed keeps
    the method as the run's name."""
    from rcfd.cli import main

    policies = []
    for seed, level in ((0, 0.0), (1, 1.0)):
        folder = tmp_path / "runs" / "summaries" / "rcfd" / f"seed{seed}" / "policy"
        folder.mkdir(parents=True)
        pd.DataFrame({"step": range(1, 9), "reward": [level] * 8}).to_csv(folder / "train_log.csv", index=False)
        policies.append(str(folder))
    for runs, expected in ((policies, ["rcfd seed0", "rcfd seed1"]), (policies[1:], ["rcfd"])):
        table = tmp_path / f"table{len(runs)}.csv"
        assert main(["training_curves", "--policies", *runs, "--out", str(tmp_path / f"fig{len(runs)}"),
                     "--table", str(table)]) == 0
        got = pd.read_csv(table)
        assert got["run"].tolist() == expected
        assert got["last quarter"].tolist() == ([0.0, 1.0] if len(runs) == 2 else [1.0])
