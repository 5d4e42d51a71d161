"""Sampling completions for held-out prompts, batched, with the model kept in memory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models import load_policy, load_tokenizer
from ..rewards import completion_length
from ..sampling import SamplingConfig, prefilled, sampling, sampling_config
from ..utils import batched, log, pick_device, seed_everything


@dataclass
class GenerateConfig:
    max_new_tokens: int = 32
    temperature: float = 1.0  # the alignment score is defined on stochastic samples
    top_p: float = 1.0
    top_k: int = 0  # 0 = off, as in TRL's RL sampling (transformers' own generate default is 50)
    samples_per_prompt: int = 1  # greedy decoding (temperature 0) is deterministic: one sample per prompt
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # config `<task>.sampling`

    def __post_init__(self):
        self.sampling = sampling_config(self.sampling)


@torch.no_grad()  # not inference_mode: under it autocast's weight cache (cpu_bf16) stays unused
def generate(base: str, adapter: str | Path | None, rows: list[dict], cfg: GenerateConfig) -> list[dict]:
    """One output row per (prompt, sample): {id, sample, prompt, completion, completion_tokens}.
    Greedy decoding draws `samples_per_prompt` copies of one text, which would count as duplicates
    in the diversity metrics (self-BLEU 100, distinct-n halved): it writes one sample per prompt."""
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    tok = load_tokenizer(base)
    model = load_policy(base, adapter, device)
    samples = cfg.samples_per_prompt if cfg.temperature > 0 else 1
    jobs = [(r, s) for r in rows for s in range(samples)]
    out, t0 = [], time.time()
    for chunk in batched(jobs, cfg.batch_size):
        enc = tok([r["prompt"] for r, _ in chunk], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(device)
        with sampling(model, cfg.sampling, device):
            inputs = prefilled(model, enc["input_ids"], enc["attention_mask"]) if cfg.sampling.shared_prefill else enc
            gen = model.generate(
                **inputs, do_sample=cfg.temperature > 0, temperature=cfg.temperature or None,
                top_p=cfg.top_p, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
            )
        new = gen[:, enc["input_ids"].shape[1]:]
        for (r, s), ids in zip(chunk, new):
            ids = ids[ids != tok.pad_token_id] if tok.pad_token_id != tok.eos_token_id else ids
            n = completion_length(ids, tok.eos_token_id)
            out.append({"id": r["id"], "sample": s, "prompt": r["prompt"],
                        "completion": tok.decode(ids[:n], skip_special_tokens=True), "completion_tokens": n})
        log.info("generated %d/%d (%.0fs)", len(out), len(jobs), time.time() - t0)
    return out
