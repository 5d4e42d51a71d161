"""Loading the policy (with or without a trained LoRA adapter) from a folder or a hub id."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .utils import pick_dtype


@dataclass
class LoraSettings:
    r: int = 32  # paper: rank 32
    lora_alpha: int = 64  # paper: alpha 64 (LoRA's scale; not the length-reward weight alpha)
    dropout: float = 0.01  # paper: 0.01 (0 for summarisation)
    target_modules: list[str] | str = field(default_factory=lambda: "all-linear")

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.lora_alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, task_type="CAUSAL_LM")


def load_tokenizer(path: str, padding_side: str = "left"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = padding_side  # decoder-only generation pads on the left
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(base: str, adapter: str | Path | None, device: str):
    """The base causal LM, with a trained policy's LoRA adapter merged in when one is given. A
    trained policy folder holding a full model (DPO on top of SFT) is loaded as it is."""
    from transformers import AutoModelForCausalLM

    if adapter is not None and (Path(adapter) / "config.json").exists():
        return AutoModelForCausalLM.from_pretrained(str(adapter), dtype=pick_dtype(device)).to(device).eval()
    model = AutoModelForCausalLM.from_pretrained(base, dtype=pick_dtype(device))
    if adapter is not None and (Path(adapter) / "adapter_config.json").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.to(device).eval()
