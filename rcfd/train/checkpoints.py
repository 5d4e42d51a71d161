"""Resumable training: a run's checkpoint folder, resuming from its last complete checkpoint, and
the fault injection that the preemption tests use to kill a run right after a checkpoint or in the
middle of writing one (RLOO, SFT, DPO and PPO alike)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from ..utils import log

KILL_ENV = "RCFD_KILL_AFTER_STEP"  # the preemption test sets it: SIGKILL after this step's checkpoint
KILL_DURING_SAVE_ENV = "RCFD_KILL_DURING_SAVE"  # SIGKILL while this step's checkpoint is being written
SNAPSHOTS = "snapshots"  # the policy folder's adapters of earlier steps (rl.snapshot_steps)


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
        """This run's last complete checkpoint, if an earlier attempt left one. A checkpoint that a
        kill interrupted while it was being written is removed: resuming from it would fail, and so
        would every retry."""
        found = [p for p in self.dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)] \
            if self.dir.is_dir() else []
        for path in sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True):
            if is_complete(path):
                log.info("resuming from %s", path)
                return str(path)
            log.warning("removing the incomplete checkpoint %s (the run was killed while saving it)", path)
            shutil.rmtree(path)
        return None

    def snapshot(self, model, step: int) -> None:
        """The adapter at `step` (rl.snapshot_steps: the gold-vs-proxy curve scores it), kept here
        so that a run resumed after that step still has it, moved beside the policy by `keep_snapshots`."""
        path = self.dir / SNAPSHOTS / f"step{step}"
        tmp = path.with_name(path.name + ".tmp")
        model.save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)  # a run resumed from before this step saves it again
        tmp.rename(path)
        log.info("snapshot of step %d: %s", step, path)

    def keep_snapshots(self, out: str | Path) -> None:
        """Move the snapshots into the policy folder `out` (`<out>/snapshots/step<N>`)."""
        if (self.dir / SNAPSHOTS).is_dir():
            shutil.move(str(self.dir / SNAPSHOTS), str(Path(out) / SNAPSHOTS))

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def is_complete(path: Path) -> bool:
    """Whether a checkpoint folder was written to the end: the Trainer writes trainer_state.json
    last (a kill before or during that write leaves it missing or cut); rcfd.train.ppo renames a finished
    folder into place, so its ppo_state.pt is there only when the rest is."""
    if (path / "ppo_state.pt").exists():
        return True
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def kill_if_due(step: int, env: str = KILL_ENV) -> None:
    """Fault injection: SIGKILL this process (no cleanup, as a node loss or `scancel` would) at
    step $<env> or later."""
    due = os.environ.get(env)
    if due and step >= int(due):
        os.kill(os.getpid(), signal.SIGKILL)


class Snapshots(TrainerCallback):
    """Saves the adapter at the given optimizer steps (Checkpoints.snapshot), on the main process."""

    def __init__(self, ckpt: Checkpoints, steps):
        self.ckpt, self.steps = ckpt, set(steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps and state.is_world_process_zero:
            self.ckpt.snapshot(model, state.global_step)


class KillAfterSave(TrainerCallback):
    """`kill_if_due` after each checkpoint a transformers Trainer saves."""

    def on_save(self, args, state, control, **kwargs):
        kill_if_due(state.global_step)


def _kill_while_writing_state() -> None:
    """Make the Trainer die half-way through writing a checkpoint's trainer_state.json (its last
    file) at step $RCFD_KILL_DURING_SAVE: the checkpoint folder is left with its weights but a cut state."""
    from transformers import TrainerState

    save = TrainerState.save_to_json

    def save_then_die(self, json_path):
        due = os.environ.get(KILL_DURING_SAVE_ENV)
        if due and self.global_step >= int(due):
            text = json.dumps({"global_step": self.global_step}, indent=2)
            Path(json_path).write_text(text[: len(text) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        save(self, json_path)

    TrainerState.save_to_json = save_then_die


def fault_injection() -> list:
    """The preemption tests' faults for a Trainer (none unless $RCFD_KILL_AFTER_STEP or
    $RCFD_KILL_DURING_SAVE is set): the callbacks to pass it."""
    if os.environ.get(KILL_DURING_SAVE_ENV):
        _kill_while_writing_state()
    return [KillAfterSave()] if os.environ.get(KILL_ENV) else []


def fit(trainer, ckpt: Checkpoints, save, out: str | Path | None = None) -> list[dict]:
    """Train (resuming from this run's last checkpoint, if any), `save(trainer)` the policy (and move
    its snapshots into `out`), then drop the checkpoints (the main process, once every process is
    done). Returns the log history."""
    trainer.train(resume_from_checkpoint=ckpt.last())
    save(trainer)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        if out is not None:
            ckpt.keep_snapshots(out)
        ckpt.clear()
    return trainer.state.log_history
