"""Supervised baselines: SFT on the demonstrations, and DPO from the SFT policy (TRL trainers, LoRA)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models import load_tokenizer
from ..utils import pick_device, pick_dtype, seed_everything
from .checkpoints import Checkpoints, fault_injection, fit
from .common import LoraTraining, per_process, trainer_args


@dataclass
class SFTStepConfig(LoraTraining):
    steps: int = 100
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 128
    logging_steps: int = 5


def train_sft(policy: str, rows: list[dict], cfg: SFTStepConfig, out: str | Path,
              ckpt: Checkpoints | None = None) -> list[dict]:
    """Supervised fine-tuning on the demonstrations (loss on the demonstration tokens only)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(out)
    ckpt = ckpt or Checkpoints.beside(out)
    tok = load_tokenizer(policy, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=pick_dtype(device))
    data = Dataset.from_dict({"prompt": [r["prompt"] for r in rows], "completion": [r["demo"] for r in rows]})
    args = SFTConfig(
        **trainer_args(cfg, ckpt, device), max_steps=cfg.steps,
        per_device_train_batch_size=per_process(cfg.batch_size, "sft.batch_size"),
        learning_rate=cfg.learning_rate, max_length=cfg.max_length, completion_only_loss=True,
        lr_scheduler_type="constant",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                         peft_config=cfg.lora.peft_config(), callbacks=fault_injection())
    return fit(trainer, ckpt, lambda t: t.save_model(str(out)))


@dataclass
class DPOStepConfig(LoraTraining):
    steps: int = 100  # paper: 4000
    early_steps: int = 20  # paper: the checkpoint at step 200
    dpo_beta: float = 0.1  # paper: 0.1 (DPO's beta; not the KL weight of the R_beta sweep)
    batch_size: int = 8
    learning_rate: float = 1e-5  # paper: 1e-5
    max_length: int = 256
    logging_steps: int = 5


def train_dpo(policy: str, sft_adapter: str | Path, rows: list[dict], cfg: DPOStepConfig, steps: int,
              out: str | Path, ckpt: Checkpoints | None = None) -> list[dict]:
    """DPO (TRL DPOTrainer) from the SFT policy on (prompt, demonstration, rejected) pairs; the
    reference model is the SFT policy. Saves the merged model (SFT + DPO) as a full model folder."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from ..models import load_policy

    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(out)
    ckpt = ckpt or Checkpoints.beside(out)
    tok = load_tokenizer(policy)
    model = load_policy(policy, sft_adapter, device).train()
    data = Dataset.from_dict({"prompt": [r["prompt"] for r in rows], "chosen": [r["demo"] for r in rows],
                              "rejected": [r["rejected"] for r in rows]})
    args = DPOConfig(
        **trainer_args(cfg, ckpt, device), max_steps=steps,
        per_device_train_batch_size=per_process(cfg.batch_size, "dpo.batch_size"),
        learning_rate=cfg.learning_rate, beta=cfg.dpo_beta, max_length=cfg.max_length, lr_scheduler_type="constant",
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                         peft_config=cfg.lora.peft_config(), callbacks=fault_injection())

    def save_merged(t):
        if t.is_world_process_zero():
            t.accelerator.unwrap_model(t.model).merge_and_unload().save_pretrained(out)
            tok.save_pretrained(out)

    return fit(trainer, ckpt, save_merged)
