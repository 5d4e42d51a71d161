"""How tokens are sampled, in RL (TRL's RLOO and rcfd.train.ppo) and in generation
(rcfd.evaluate.generate): the settings of config `<task>.sampling` and what each one does.

Every setting is a speed-up with the same distribution of samples: the prompt's forward pass once
per distinct prompt (`shared_prefill`), bf16 autocast on CPU with each weight cast once per call
(`cpu_bf16`), eager attention without copying grouped key/value heads (`attention: grouped`), and
each token drawn by the inverse CDF (`inverse_cdf`). docs/configuration.md gives their measurements.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .utils import InputError, cpu_bf16_in_use

ATTENTION = ("", "eager", "grouped", "sdpa")


@dataclass
class SamplingConfig:
    """Config `<task>.sampling`, shared by RL sampling and generation."""

    # run each distinct prompt's forward pass once for its samples (prefilled), and in RL also in
    # the loss's forward and backward (rcfd.train.trl_patches.SharedPrefixLoss)
    shared_prefill: bool = True
    # CPU only: sample under bf16 autocast, each weight cast once per call (cpu_autocast_decoding),
    # the precision a GPU run samples in; fp32 on CPUs without native bf16 (utils.cpu_bf16_in_use)
    cpu_bf16: bool = True
    # the attention implementation while sampling ("eager", "grouped", "sdpa"; "": the model's): sampling_attention
    attention: str = "grouped"
    # CPU only: draw each token by the inverse CDF (token_draws): the same distribution, other
    # random numbers than torch.multinomial's (one uniform per row instead of one exponential per vocabulary entry)
    inverse_cdf: bool = True

    def __post_init__(self):
        if self.attention not in ATTENTION:
            raise InputError(f"config key 'sampling.attention' {self.attention!r}: expected one of {ATTENTION}")


def sampling_config(value) -> SamplingConfig:
    """A SamplingConfig from the JSON params (a dict) or as it is."""
    if isinstance(value, SamplingConfig):
        return value
    from .utils import from_params

    return from_params(SamplingConfig, value, "sampling")


@contextmanager
def sampling(model, cfg: SamplingConfig, device: str, record: list | None = None):
    """The block samples as `cfg` says: bf16 autocast (CPU), the attention implementation, the token
    draws (and, with `record`, each draw's log-probabilities: token_draws)."""
    with cpu_autocast_decoding(model, cfg.cpu_bf16, device), sampling_attention(model, cfg.attention), \
            token_draws(device, cfg.inverse_cdf, record):
        yield


@contextmanager
def cpu_autocast_decoding(model, enabled: bool, device: str):
    """cpu_autocast for sampling (no gradients), with each weight cast to bf16 once per block
    instead of once per decoded token. Autocast casts a fp32 weight at every matmul and keeps the
    cast only for leaf tensors that require grad (its cache, dropped when the outermost autocast
    exits), so frozen weights were cast again for every token: on one CPU thread that made bf16
    decoding slower than fp32. Here they are flagged for the block (no gradient is taken: the
    caller samples under no_grad; under inference_mode autocast caches nothing) and unflagged after:
    the same bf16 weights, so the same tokens as plain autocast, 1.3-1.4x faster than fp32 on one
    thread of this AVX512-BF16 CPU (docs/time.md)."""
    if not cpu_bf16_in_use(enabled, device):
        yield
        return
    flagged = [p for p in model.parameters() if not p.requires_grad]
    for p in flagged:
        p.requires_grad_(True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    finally:
        for p in flagged:
            p.requires_grad_(False)


def inverse_cdf_multinomial(probs, num_samples: int = 1, replacement: bool = False, *, generator=None, out=None):
    """torch.multinomial for one draw per row of `probs` (rows of non-negative weights), by the
    inverse of each row's cumulative distribution: one uniform number per row instead of one
    exponential per vocabulary entry. The same distribution as torch.multinomial, other random
    numbers (so other samples for a seed). A token of weight 0 is never drawn: its cumulative sum
    equals its predecessor's, and the first position whose sum exceeds u is taken, u below the
    row's total. Other calls go to torch.multinomial."""
    if num_samples != 1 or out is not None or probs.dim() != 2 or probs.device.type != "cpu":
        original = _torch_multinomial or torch.multinomial
        return original(probs, num_samples, replacement, generator=generator, out=out)
    cdf = probs.float().cumsum(-1)
    total = cdf[:, -1:]
    if not bool(torch.isfinite(total).all() and (total > 0).all() and (probs >= 0).all()):
        raise RuntimeError("inverse_cdf_multinomial: probability rows must be finite, non-negative, with a positive sum")
    u = torch.rand(total.shape, generator=generator) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))  # strictly below the total
    return torch.searchsorted(cdf, u, right=True)


_torch_multinomial = None


@contextmanager
def token_draws(device: str, inverse_cdf: bool = False, record: list | None = None):
    """Inside the block, `generate`'s draw of each next token (transformers calls torch.multinomial
    on the softmax over the 49k-word vocabulary) goes through here:

    - `inverse_cdf` (CPU only): drawn by inverse_cdf_multinomial. torch.multinomial draws one
      exponential per vocabulary entry: on one thread of this CPU 48.8 ms per token for 50 rows,
      21.5% of sampling 50 x 40 movie-review tokens (torch profiler); the inverse CDF takes 2.5 ms.
      The same distribution with other random numbers.
    - `record` (a list): each draw's log-probabilities of the drawn tokens, a (rows, 1) tensor per
      decoded token, are appended to it: the sampling policy's log-probabilities, read off the
      distribution the token was drawn from (rl.LossLogprobs, `rl.kl_logprobs: sampling`).

    A no-op when neither applies, and inside another such block (the outer one draws)."""
    global _torch_multinomial
    icdf = inverse_cdf and not str(device).startswith("cuda")
    if not (icdf or record is not None) or _torch_multinomial is not None:
        yield
        return
    original = _torch_multinomial = torch.multinomial

    def draw(probs, num_samples=1, replacement=False, *, generator=None, out=None):
        sampler = inverse_cdf_multinomial if icdf else original
        tokens = sampler(probs, num_samples, replacement, generator=generator, out=out)
        if record is not None:
            record.append(probs.gather(-1, tokens).float().log())
        return tokens

    torch.multinomial = draw
    try:
        yield
    finally:
        torch.multinomial, _torch_multinomial = original, None


def grouped_attention(module, query, key, value, attention_mask, scaling: float, dropout: float = 0.0, **kwargs):
    """Eager attention (transformers' eager_attention_forward: matmul, additive mask, softmax in
    fp32, matmul) without copying the key/value heads. With grouped-query attention (SmolLM2: 9
    query heads share 3 key/value heads) eager copies each key/value head to its query heads in every
    layer at every decoded token (repeat_kv), the cost that made eager slower than sdpa at many rows
    and long contexts; here the query heads of one key/value head are stacked as rows of one matmul
    instead, so the keys and values are read where the cache holds them. The same products and sums."""
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    rows = query.reshape(batch, kv_heads, heads // kv_heads * q_len, dim)  # query heads h = k * groups + g
    weights = (torch.matmul(rows, key.transpose(2, 3)) * scaling).view(batch, heads, q_len, -1)
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights.reshape(batch, kv_heads, -1, weights.shape[-1]), value)
    return out.view(batch, heads, q_len, dim).transpose(1, 2).contiguous(), weights


def register_grouped_attention() -> None:
    """Make "grouped" (grouped_attention, with eager's additive mask) an attention implementation
    that transformers models accept (`set_attn_implementation("grouped")`)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register("grouped", grouped_attention)
    AttentionMaskInterface.register("grouped", eager_mask)


@contextmanager
def sampling_attention(model, implementation: str):
    """Sample with another attention implementation than the model's: "eager" (transformers' own
    matmul, softmax, matmul), "grouped" (the same without copying key/value heads, grouped_attention)
    or "sdpa"; "" keeps the model's. For one query token per step on one CPU thread, sdpa's CPU
    flash-attention kernel took 773 us a call and eager decoding was 11-12% faster (docs/time.md).
    Eager copies the grouped key/value heads to every query head (transformers' repeat_kv) in each
    layer at each token, so for many rows and long contexts it is slower: 120 rows x ~210 positions
    took twice sdpa's time; "grouped" does not copy them. The loss's forward, over whole sequences, keeps sdpa.
    The model's implementation is restored after the block (a PEFT model: its base model's)."""
    if not implementation:
        yield
        return
    if implementation == "grouped":
        register_grouped_attention()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    before = base.config._attn_implementation
    base.set_attn_implementation(implementation)
    try:
        yield
    finally:
        base.set_attn_implementation(before)


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
