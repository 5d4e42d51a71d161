"""The real-SLURM test (tests/slurm/run.sh) under pytest. Opt-in: it installs Slurm, munge and MariaDB
with apt and starts their daemons, so it needs root on Debian and RCFD_SLURM_TEST=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slurm
@pytest.mark.skipif(os.environ.get("RCFD_SLURM_TEST") != "1",
                    reason="opt-in (RCFD_SLURM_TEST=1, root on Debian): installs and starts a one-node Slurm cluster")
def test_smoke_dag_on_a_real_slurm_cluster():
    out = subprocess.run(["bash", str(REPO / "tests/slurm/run.sh")], env={**os.environ, "PYTHON": sys.executable},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "PASSED" in out.stdout
