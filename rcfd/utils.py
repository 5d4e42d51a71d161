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


def batched(items: list[T], size: int) -> Iterable[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
