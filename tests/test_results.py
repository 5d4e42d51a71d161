"""The committed tables of the default run are exactly what the committed per-run CSVs give."""

from pathlib import Path

import pandas as pd
import pytest

from rcfd.tables import TABLES, build_table, load_metrics

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(TABLES))
def test_committed_table_rebuilds_from_per_run_csvs(name):
    committed = REPO / "results/tables" / f"{name}.csv"
    if not committed.exists():
        pytest.skip(f"{committed} is not committed yet")
    cfg = TABLES[name]
    runs = sorted((REPO / "results/runs" / cfg.task).glob("*/seed*/metrics.csv"))
    assert runs, f"no per-run metrics under results/runs/{cfg.task}"
    rebuilt = build_table(load_metrics(runs), cfg)
    pd.testing.assert_frame_equal(rebuilt, pd.read_csv(committed), check_dtype=False)
