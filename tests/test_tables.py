import pandas as pd
import pytest

from rcfd.tables import TABLES, build_table, load_metrics, write_table
from rcfd.utils import InputError


def _metrics():
    rows = []
    for method, r in [("rcfd", 1.0), ("beta0", 3.0), ("base", 0.5), ("demonstrations", 1.1)]:
        for seed in (0, 1):
            rows.append({"task": "movies", "method": method, "seed": seed, "alignment": r / 10 + seed,
                         "avg_reward": r + seed, "mean_tokens": 10, "success_vader": 0.9, "loglik_base": -3.0, "distinct_2": 0.5, "self_bleu": 5.0})
    return pd.DataFrame(rows)


def test_table_means_over_seeds_in_paper_order(tmp_path):
    table = build_table(_metrics(), TABLES["table6"])
    assert list(table["method"]) == ["demonstrations", "base", "R β=0", "RCfD"]
    assert table.loc[table.method == "R β=0", "avg R"].item() == pytest.approx(3.5)
    assert set(table["seeds"]) == {2}
    paths = write_table(table, tmp_path / "t", "caption")
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex"]
    assert "RCfD" in paths[1].read_text() and "\\begin{tabular}" in paths[2].read_text()
    assert pd.read_csv(paths[0]).equals(table)


def test_missing_metric_is_named():
    with pytest.raises(InputError, match="self_bleu"):
        build_table(_metrics().drop(columns="self_bleu"), TABLES["table6"])


def test_load_metrics_checks_columns(tmp_path):
    f = tmp_path / "m.csv"
    pd.DataFrame([{"method": "rcfd", "seed": 0}]).to_csv(f, index=False)
    with pytest.raises(InputError, match="task"):
        load_metrics([f])


def test_paper_values_are_labelled_data(tmp_path):
    from rcfd.paper import paper_table

    paper = paper_table("table6")
    assert paper.loc[paper.method == "rcfd", "alignment"].item() == 0.04
    paths = write_table(build_table(_metrics(), TABLES["table6"]), tmp_path / "table6", "caption")
    md = paths[1].read_text()
    assert "the paper's values" in md and md.index("caption") < md.index("the paper's values")
    assert "paper" not in paths[0].read_text()  # the CSV holds this run's numbers only
