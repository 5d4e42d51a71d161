"""Small shared helpers: JSONL/JSON I/O, seeding, device choice, logging, dataclass params."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import random
import sys
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("rcfd")


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class InputError(ValueError):
    """Bad user input (config, file, row). The CLI prints it as one line and exits 2."""


def from_params(cls: type[T], params: dict[str, Any], where: str) -> T:
    """Build a step's dataclass config from a dict, rejecting unknown keys by name."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(names)}")
    return cls(**params)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """One JSON object per line (blank lines skipped); one line naming the file and line otherwise."""
    rows = []
    try:
        # "\n" only: str.splitlines() also splits at U+2028, U+0085 and the like, which JSON keeps raw in strings
        lines = Path(path).read_bytes().decode("utf-8").split("\n")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_rows(path: str | Path, columns: Iterable[str] = (), numbers: Iterable[str] = (),
              split: str | None = None) -> list[dict[str, Any]]:
    """The rows of a JSONL file that a step needs: each has `columns`, `numbers` are finite
    numbers, and with `split` only that split's rows are kept (there must be some)."""
    rows = read_jsonl(path)
    if not rows:
        raise InputError(f"{path}: no rows")
    if split is not None:
        require_columns(rows, ["split"], path)
        rows = [r for r in rows if r["split"] == split]
        if not rows:
            raise InputError(f"{path}: no rows with split {split!r}")
    require_columns(rows, [*columns, *numbers], path)
    for column in numbers:
        for i, row in enumerate(rows):
            value = row[column]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"{path}: row {i}: column {column!r} is {value!r}, expected a finite number")
    return rows


@contextmanager
def atomic(path: str | Path):
    """Write a result through `with atomic(path) as tmp:`: the block writes `tmp` (beside `path`),
    renamed onto `path` when it ends, so a killed step never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    with atomic(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path: str | Path, obj: Any) -> None:
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_csv(frame, path: str | Path) -> None:
    """A pandas frame as a CSV file, atomically."""
    with atomic(path) as tmp:
        frame.to_csv(tmp, index=False)


def require_columns(rows: list[dict[str, Any]], columns: Iterable[str], path: str | Path) -> None:
    for i, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise InputError(f"{path}: row {i} lacks column(s) {missing}")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch
    from transformers import set_seed

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    set_seed(seed)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(device: str):
    """bf16 on GPU (the paper's setting), fp32 on CPU (bf16 matmuls are slow on most CPUs)."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


@functools.cache
def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere torch emulates it.
    RCFD_NATIVE_CPU_BF16=1 (or 0) says so instead: the test suite exercises the bf16 paths on any CPU."""
    import torch

    forced = os.environ.get("RCFD_NATIVE_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return any(getattr(torch.cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def cpu_bf16_in_use(enabled: bool, device: str) -> bool:
    """Whether a `cpu_bf16` setting takes effect: on a CPU that multiplies bf16 natively. Elsewhere
    torch emulates bf16 matmuls, 50x slower than fp32 (an AVX2 EPYC core: 1.2 vs 63 GFLOP/s on a
    SmolLM2 training matmul), so the setting falls back to fp32, said once in the log: the numbers are
    then fp32's, as on another machine. The settings are CPU speed-ups; on GPU bf16 is the dtype."""
    if not enabled or str(device).startswith("cuda"):
        return False
    if native_cpu_bf16():
        return True
    if not _FP32_FALLBACK_SAID:
        _FP32_FALLBACK_SAID.append(True)
        log.warning("cpu_bf16 settings are on but this CPU has neither AVX512-BF16 nor AMX (bf16 would be emulated, "
                    "~50x slower than fp32): computing in fp32 instead")
    return False


_FP32_FALLBACK_SAID: list = []


def cpu_autocast(enabled: bool, device: str):
    """bf16 autocast on CPU when `enabled` and the CPU has native bf16 (cpu_bf16_in_use): the matmuls
    in bf16, as a GPU run computes them (its weights are bf16 already, pick_dtype); a no-op on GPU."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16_in_use(enabled, device))


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
    import torch

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
    import torch

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
    import torch

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
    import torch

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


def batched(items: list[T], size: int) -> Iterable[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
