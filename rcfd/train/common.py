"""What every LoRA policy-training step shares (RL in rl.py and ppo.py, SFT and DPO in sft.py):
its config base, the TRL trainer arguments, the global batch split over processes, the log.
Checkpoints and resuming are checkpoints.py; the reward model's training is reward_model.py."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..models import LoraSettings
from ..utils import InputError, atomic, cpu_bf16_in_use
from .checkpoints import Checkpoints


@dataclass
class LoraTraining:
    """What every LoRA policy-training step shares."""

    lora: LoraSettings = field(default_factory=LoraSettings)
    # recompute activations in the backward pass (TRL's default): memory for time; off: at this
    # scale every training job fits without it and runs faster (docs/time.md)
    gradient_checkpointing: bool = False
    # CPU only (GPUs always train in bf16): autocast the forward and backward matmuls to bf16. On CPUs
    # with AVX512-BF16 or AMX it runs a LoRA step of SmolLM2-135M 1.7x faster; elsewhere it would be
    # emulated, far slower than fp32, so it falls back to fp32 (utils.cpu_bf16_in_use).
    cpu_bf16: bool = True
    checkpoint_steps: int = 0  # save a resumable checkpoint every N optimizer steps (0: never)
    processes: int = 1  # data-parallel processes, one per GPU (rcfd.train.distributed); batches stay global
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if isinstance(self.lora, dict):  # from the JSON params
            self.lora = LoraSettings(**self.lora)


def per_process(batch: int, key: str) -> int:
    """A global batch split over the data-parallel processes (the config's batches are global, so a
    run keeps its batch whatever the number of GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if batch % world:
        raise InputError(f"config key '{key}': its batch of {batch} does not split over {world} processes")
    return batch // world


def trainer_args(cfg: LoraTraining, ckpt: Checkpoints, device: str) -> dict:
    """The TrainingArguments every TRL trainer of a policy shares: checkpoints, seeds, precision, logging."""
    return dict(
        output_dir=str(ckpt.dir), report_to="none", seed=cfg.seed, data_seed=cfg.seed,
        save_strategy="steps" if cfg.checkpoint_steps else "no", save_steps=cfg.checkpoint_steps or 500,
        save_total_limit=2,  # the last two: a kill while saving the newest leaves the one before
        gradient_checkpointing=cfg.gradient_checkpointing, logging_steps=cfg.logging_steps,
        bf16=device.startswith("cuda") or cpu_bf16_in_use(cfg.cpu_bf16, device), use_cpu=not device.startswith("cuda"),
        dataloader_num_workers=0,
        disable_tqdm=False,
    )



def write_log_history(history: list[dict], path: str | Path) -> None:
    """A trainer's log history (one dict per logged step) as a CSV, every key a column."""
    keys = sorted({k for h in history for k in h})
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
