"""Sampling completions for held-out prompts, batched, with the model kept in memory."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .models import load_policy, load_tokenizer
from .rewards import completion_length
from .utils import (
    batched,
    cpu_autocast_decoding,
    log,
    pick_device,
    sampling_attention,
    seed_everything,
    token_draws,
)


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
    # Run each distinct prompt's forward pass once for its samples (prefilled); off: as the
    # committed results were sampled
    shared_prefill: bool = False
    # CPU only: sample under bf16 autocast, each weight cast once per batch (utils.cpu_autocast_decoding),
    # the precision a GPU run samples in; off: fp32
    cpu_bf16: bool = False
    # the attention implementation while sampling ("eager", "grouped", "sdpa"; "": the model's), utils.sampling_attention
    attention: str = ""
    # CPU only: draw each token by the inverse CDF (utils.token_draws): the same distribution,
    # other random numbers than torch.multinomial's (one uniform per row instead of one exponential per vocabulary entry)
    inverse_cdf: bool = False


def prefix_cache(model, ids: torch.Tensor, mask: torch.Tensor, positions_from_mask: bool = False):
    """The KV cache of the prompt prefixes `ids` (`mask`), computed once per distinct row and copied
    to every row (`index_select`: differentiable, so under autograd the rows' gradients add up in
    the shared prefix); None when no row repeats. Positions: from the mask, as `generate` makes
    them, or the model's default 0..n-1 (TRL's training forward)."""
    from transformers import DynamicCache

    distinct, copy_of = torch.unique(torch.cat([ids, mask], dim=1), dim=0, return_inverse=True)
    if len(distinct) == len(ids):
        return None
    ids, mask = distinct.split(ids.shape[1], dim=1)
    positions = {"position_ids": (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)} if positions_from_mask else {}
    cache = DynamicCache(config=model.config)
    model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1, **positions)
    cache.reorder_cache(copy_of)  # one copy per row
    return cache


@torch.no_grad()
def prefilled(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict:
    """`generate`'s inputs with the prompts' KV cache computed once per distinct prompt.

    Several samples of one prompt (RLOO's generations, the evaluation's samples per prompt) sit in a
    batch as repeated rows, and `generate` runs the prompt's forward pass (the prefill) for every
    row: at 150-token prompts a fifth of sampling 80 tokens on CPU. Here the prefill runs on the
    distinct rows up to the last prompt token (prefix_cache), and `generate` goes on from the last
    token: the same positions and the same keys and values, up to rounding (in fp32 the same
    tokens; under bf16 autocast a smaller batch rounds otherwise); sampling draws the same random
    numbers. With no repeated row the inputs are returned as they are."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if input_ids.shape[1] < 2:
        return inputs
    cache = prefix_cache(model, input_ids[:, :-1], attention_mask[:, :-1], positions_from_mask=True)
    return inputs if cache is None else {**inputs, "past_key_values": cache}


def share_prefill(model) -> None:
    """Make `model.generate` take its inputs through `prefilled`: for a trainer (TRL's RLOO) that
    calls it with each prompt repeated for its samples."""
    generate = model.generate
    model.generate = lambda input_ids=None, attention_mask=None, **kwargs: generate(
        **prefilled(model, input_ids, attention_mask), **kwargs)


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
        with cpu_autocast_decoding(model, cfg.cpu_bf16, device), sampling_attention(model, cfg.attention), \
                token_draws(device, cfg.inverse_cdf):
            inputs = prefilled(model, enc["input_ids"], enc["attention_mask"]) if cfg.shared_prefill else enc
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
