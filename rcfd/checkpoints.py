"""Resumable training: a run's checkpoint folder, resuming from it, and the fault injection that
the preemption test uses to kill a run right after a checkpoint (RLOO, SFT, DPO and PPO alike)."""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from .utils import log

KILL_ENV = "RCFD_KILL_AFTER_STEP"  # the preemption test sets it: SIGKILL after this step's checkpoint


@dataclass
class Checkpoints:
    """A folder beside the step's output (Snakemake deletes an interrupted job's output before
    rerunning it, not this folder), tagged with the run's fingerprint so that a rerun with other
    settings starts afresh instead of resuming another run's state."""

    dir: Path
    fingerprint: str = ""

    @classmethod
    def beside(cls, out: str | Path) -> Checkpoints:
        """An unnamed run's checkpoints, `checkpoints/` beside `out`, claimed."""
        ckpt = cls(Path(out).with_name("checkpoints"))
        ckpt.claim()
        return ckpt

    def claim(self) -> None:
        """Drop checkpoints left by other settings and tag the folder as this run's (once, before
        any training process starts)."""
        tag = self.dir / "fingerprint.txt"
        if self.dir.exists() and (not tag.exists() or tag.read_text() != self.fingerprint):
            log.info("checkpoints in %s are from other settings: starting afresh", self.dir)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        tag.write_text(self.fingerprint)

    def last(self) -> str | None:
        """This run's last complete checkpoint, if an earlier attempt left one."""
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(self.dir)) if self.dir.is_dir() else None
        if last:
            log.info("resuming from %s", last)
        return last

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def kill_if_due(step: int) -> None:
    """Fault injection: SIGKILL this process (no cleanup, as a node loss or `scancel` would) once
    the checkpoint of step $RCFD_KILL_AFTER_STEP or later is saved."""
    due = os.environ.get(KILL_ENV)
    if due and step >= int(due):
        os.kill(os.getpid(), signal.SIGKILL)


class KillAfterSave(TrainerCallback):
    """`kill_if_due` after each checkpoint a transformers Trainer saves."""

    def on_save(self, args, state, control, **kwargs):
        kill_if_due(state.global_step)


def fault_injection() -> list:
    """The Trainer callbacks of the preemption test (none unless $RCFD_KILL_AFTER_STEP is set)."""
    return [KillAfterSave()] if os.environ.get(KILL_ENV) else []


def fit(trainer, ckpt: Checkpoints, save) -> list[dict]:
    """Train (resuming from this run's last checkpoint, if any), `save(trainer)` the policy, then
    drop the checkpoints (the main process, once every process is done). Returns the log history."""
    trainer.train(resume_from_checkpoint=ckpt.last())
    save(trainer)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        ckpt.clear()
    return trainer.state.log_history
