"""Gold vs proxy (rcfd/report/gold.py): the judge's soft scores beside R_RM, per method and along
training, from scored samples; checked by hand."""

import math

import pandas as pd
import pytest

from rcfd.report.gold import gold_vs_proxy, run_of
from rcfd.report.plots import gold_vs_proxy_figure
from rcfd.utils import InputError


def test_run_of_reads_method_and_snapshot_step():
    assert run_of("results/runs/summaries/beta0/seed1/scored.jsonl") == ("beta0", None)
    assert run_of("results/runs/summaries/rcfd/seed0/snapshots/step20/scored.jsonl") == ("rcfd", 20)


def _samples():
    rows = []
    def add(method, step, rewards, facts):
        rows.extend({"method": method, "step": step, "seed": 0, "reward": r, "judge_factuality": f}
                    for r, f in zip(rewards, facts))
    add("base", None, [0.0, 1.0], [0.8, 0.6])
    add("beta0", 10, [1.0, 2.0], [0.5, 0.5])
    add("beta0", None, [3.0, 5.0], [0.2, 0.0])
    add("demonstrations", None, [1.0, 1.0], [0.9, 0.9])
    rows.append({"method": "beta0", "step": None, "seed": 0, "reward": 100.0})  # not judged: left out
    return pd.DataFrame(rows)


def test_gold_vs_proxy_by_hand(tmp_path):
    table = gold_vs_proxy(_samples(), ["factuality"], final_step=40)
    assert table["method"].tolist() == ["demonstrations", "base", "beta0", "beta0"]
    assert table["step"].isna().tolist() == [True, False, False, False]  # no RL step for the demonstrations
    assert table["step"].dropna().tolist() == [0, 10, 40]  # the base model is the start of RL training
    got = table.dropna(subset=["step"]).set_index(["method", "step"])
    end = got.loc[("beta0", 40)]
    assert end["judged"] == 2 and end["R_RM"] == 4.0 and end["factuality"] == pytest.approx(0.1)
    # changes against the base model (R_RM 0.5, factuality 0.7): the proxy up, the gold down
    assert end["Δ R_RM"] == 3.5 and end["Δ factuality"] == pytest.approx(-0.6)
    # 95% normal interval of the mean: 1.96 * sd / sqrt(n), sd of (3, 5) = sqrt(2)
    assert end["R_RM_ci95"] == pytest.approx(1.959964 * math.sqrt(2) / math.sqrt(2), rel=1e-6)
    assert got.loc[("beta0", 10), "Δ R_RM"] == 1.0
    paths = gold_vs_proxy_figure(table, ["factuality"], ["beta0"], tmp_path / "gold")
    assert all(p.stat().st_size > 0 for p in paths)
    # no validated gold question: the proxy alone
    assert list(gold_vs_proxy(_samples(), [], 40).columns) == ["label", "method", "step", "judged", "R_RM",
                                                               "R_RM_ci95", "Δ R_RM"]


def test_gold_vs_proxy_names_what_is_missing():
    with pytest.raises(InputError, match="no scored samples of the base model"):
        gold_vs_proxy(_samples().query("method != 'base'"), ["factuality"], 40)
    with pytest.raises(InputError, match="'judge_naturalness'"):
        gold_vs_proxy(_samples(), ["naturalness"], 40)
