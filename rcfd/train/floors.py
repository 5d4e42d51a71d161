"""What this machine can do, and the floor of each phase of an RL step on it.

A phase's floor is the time it would take if its matmuls ran at the machine's measured GEMM
throughput and the bytes it must read streamed at the measured memory bandwidth, whichever of
the two is slower (a roofline), at the thread count the job runs with:

  training (forward + backward)  its model FLOPs (model_flops) / the GEMM FLOP/s in the
                                 dtype the matmuls run in (bf16 under autocast, else fp32)
  sampling                       the prompts' prefill FLOPs / GEMM FLOP/s, plus for each decoded
                                 token the larger of its FLOPs (2 per weight and sequence) over the
                                 GEMM FLOP/s and the bytes it reads (every weight once, and each
                                 sequence's KV cache so far) over the bandwidth

The measured time over the floor says how much of a phase is something other than arithmetic
and weight traffic: Python per decoded token, small matmuls, attention, softmax, copies. Each
rate is the best of a few repeats (a floor is a best case), measured in the process that reports
it, so on the machine and thread count of the measured phase.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Machine:
    threads: int
    gemm_flops: dict[str, float]  # dtype name -> FLOP/s of a training-shaped GEMM
    bandwidth: float  # bytes/s: the best of a streaming read and a decode-shaped GEMM's weight stream


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_seconds(fn, device: str, repeats: int = 5, min_seconds: float = 0.05) -> float:
    """The fastest of `repeats` timed calls of `fn` (after one untimed), each call repeated until it
    has run `min_seconds` so that short kernels are timed above the clock's resolution."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / n)
    return best


def gemm_flops(dtype: str, m: int, k: int, n: int, device: str) -> float:
    """FLOP/s of an (m x k) @ (k x n) matmul in `dtype` (2 m k n FLOPs)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(m, k, device=device, generator=g).to(DTYPES[dtype])
    b = torch.randn(k, n, device=device, generator=g).to(DTYPES[dtype])
    return 2 * m * k * n / best_seconds(lambda: a @ b, device)


def bandwidth(device: str, megabytes: int = 256, rows: int = 16) -> float:
    """Bytes/s read from memory: the better of summing a `megabytes` fp32 tensor and a decode-shaped
    bf16 matmul ((rows x 4096) @ a `megabytes` weight), each far larger than the CPU's caches."""
    # one buffer at a time (each freed on return): the job's memory grows by `megabytes`, not twice that
    return max(_summing(megabytes, device), _streaming(megabytes, rows, device))


def _summing(megabytes: int, device: str) -> float:
    x = torch.ones(megabytes * 2**20 // 4, device=device)
    return x.numel() * 4 / best_seconds(lambda: x.sum(), device, repeats=3)


def _streaming(megabytes: int, rows: int, device: str) -> float:
    w = torch.ones(4096, megabytes * 2**20 // (2 * 4096), dtype=torch.bfloat16, device=device)
    h = torch.ones(rows, 4096, dtype=torch.bfloat16, device=device)
    return w.numel() * 2 / best_seconds(lambda: h @ w, device, repeats=3)


def measure_machine(device: str, shape: tuple[int, int, int] = (800, 576, 1536)) -> Machine:
    """The GEMM throughput in fp32 and bf16 at a training shape (tokens x hidden x intermediate:
    by default the movie step's 16 x 50 tokens through SmolLM2's MLP) and the memory bandwidth,
    at torch's current thread count."""
    return Machine(threads=torch.get_num_threads(),
                   gemm_flops={d: gemm_flops(d, *shape, device) for d in DTYPES},
                   bandwidth=bandwidth(device))


def model_flops(body: int, head: int, lora: int, tokens: float, completion_tokens: float, train: bool) -> float:
    """Matmul FLOPs of a forward (train=False) or forward + LoRA backward, with `body` the frozen base's
    linear weights but the LM head, `head` the LM head's (which scores the completion positions only)
    and `lora` the adapters': forward 2 (body + lora) per token + 2 head per completion token; backward
    2 body per token + 2 head per completion token (activation gradients: the base is frozen) + 4 lora
    per token (both gradients). Attention scores and gradient checkpointing's recomputation are left out."""
    forward = 2 * (body + lora) * tokens + 2 * head * completion_tokens
    backward = 2 * body * tokens + 2 * head * completion_tokens + 4 * lora * tokens
    return float(forward + (backward if train else 0))


def count_weights(model) -> tuple[int, int, int]:
    """(body, head, lora): the frozen linear weights but the LM head's, the LM head's, and the trainable ones."""
    head = model.get_output_embeddings().weight
    body = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)
               and not m.weight.requires_grad and m.weight is not head)
    return body, head.numel(), sum(p.numel() for p in model.parameters() if p.requires_grad)


def training_floor(machine: Machine, flops: float, dtype: str) -> float:
    """Seconds of the forward + backward pass's `flops` at the GEMM throughput in `dtype`."""
    return flops / machine.gemm_flops[dtype]


def sampling_floor(machine: Machine, dtype: str, weights: int, prompts: int, sequences: int, prompt_tokens: float,
                   new_tokens: float, kv_bytes_per_token: int) -> float:
    """Seconds to sample `new_tokens` for each of `sequences` sequences of `prompts` distinct prompts of
    `prompt_tokens`, with `weights` matmul weights (LoRA included where it is not merged) stored in
    `dtype`: each distinct prompt prefilled once at the GEMM throughput, then per decoded token the
    larger of its compute and its reads (every weight, and the KV cache of every sequence so far:
    `kv_bytes_per_token` per position)."""
    flop_s, size = machine.gemm_flops[dtype], DTYPES[dtype].itemsize
    seconds = 2 * weights * prompts * prompt_tokens / flop_s
    for t in range(round(new_tokens)):
        reads = weights * size + sequences * (prompt_tokens + t) * kv_bytes_per_token
        seconds += max(2 * weights * sequences / flop_s, reads / machine.bandwidth)
    return seconds


def kv_bytes_per_token(config, dtype: str) -> int:
    """Bytes of keys and values one position adds to a transformer's cache, for a transformers config."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * DTYPES[dtype].itemsize


def roofline(machine: Machine, weights: tuple[int, int, int], config, prompts: int, sequences: int,
             sampling_dtype: str, merged: bool, train_dtype: str) -> dict:
    """What an RL job records beside its training log (policy/roofline.json) so that each phase's floor
    can be computed on the machine that ran it: the measured rates, the policy's (body, head, lora)
    weights (count_weights), the cache bytes per position of its transformers `config`, the batch,
    and the dtypes sampling and training ran in."""
    body, head, lora = weights
    return {"threads": machine.threads, "gemm_flops": machine.gemm_flops, "bandwidth": machine.bandwidth,
            "body": body, "head": head, "lora": lora, "kv_bytes_per_token": kv_bytes_per_token(config, sampling_dtype),
            "prompts": prompts, "sequences": sequences, "sampling_dtype": sampling_dtype, "merged": merged,
            "train_dtype": train_dtype}


def step_floors(r: dict, prompt_tokens: float, completion_tokens: float) -> dict[str, float]:
    """The floors (seconds) of an RL step's sampling and training (forward + backward) phases, from a
    job's `roofline` record, at a step's mean prompt and completion lengths. Training's work is the
    minimum: each distinct prompt once, each completion once."""
    machine = Machine(r["threads"], r["gemm_flops"], r["bandwidth"])
    weights = r["body"] + r["head"] + (0 if r["merged"] else r["lora"])
    tokens = r["prompts"] * prompt_tokens + r["sequences"] * completion_tokens
    flops = model_flops(r["body"], r["head"], r["lora"], tokens, r["sequences"] * completion_tokens, train=True)
    return {"generate": sampling_floor(machine, r["sampling_dtype"], weights, r["prompts"], r["sequences"],
                                       prompt_tokens, completion_tokens, r["kv_bytes_per_token"]),
            "train": training_floor(machine, flops, r["train_dtype"])}
