"""Data-parallel training: a step asked for N processes re-runs itself under torch.distributed.run
(what `accelerate launch --multi_gpu` runs), one process per GPU; the Trainer's accelerate backend
then shards the batches and all-reduces the gradients (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os
import subprocess
import sys

from ..utils import log


def is_launched() -> bool:
    """True inside a process started by the launcher (it sets RANK)."""
    return "RANK" in os.environ


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def relaunch(processes: int, argv: list[str]) -> None:
    """With processes > 1, run `python -m rcfd <argv>` as that many processes and exit with their
    status; with 1, return and let the caller train in this process."""
    if processes <= 1:
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "-m", "rcfd", *argv]
    log.info("launching %d data-parallel processes", processes)
    raise SystemExit(subprocess.call(cmd))
