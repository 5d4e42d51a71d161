"""The paper's reported numbers, kept as labelled data (never used as results)."""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent


def paper_table(name: str) -> pd.DataFrame | None:
    """The paper's table `name` (method names as in rcfd.methods), or None if not kept."""
    path = HERE / f"{name}.csv"
    return pd.read_csv(path, comment="#") if path.exists() else None
