"""Provenance written beside results: git commit, a hash of the parameters, package versions."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .utils import InputError, native_cpu_bf16, write_json

# what decides a result; changes elsewhere (results, logs) do not make the commit "dirty"
CODE_PATHS = ["rcfd", "workflow", "Snakefile", "config.yaml", "configs", "pyproject.toml"]
PACKAGES = ["rcfd", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "snakemake",
            "numpy", "pandas", "sacrebleu"]


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def params_hash(params) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def read_provenance(result: str | Path) -> dict:
    """<result>.provenance.json as a dict; {} where the result has none."""
    path = Path(str(result) + ".provenance.json")
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot be read as provenance ({e})") from None


def write_provenance(result: str | Path, params, **extra) -> Path:
    """Write <result>.provenance.json: what made this result and with which code."""
    path = Path(str(result) + ".provenance.json")
    write_json(path, {"result": Path(result).name, "commit": git_commit(), "params_hash": params_hash(params),
                      "params": params, "versions": versions(), "host": platform.node(),
                      # whether cpu_bf16 settings took effect on this host (steps that ran a model)
                      "native_cpu_bf16": native_cpu_bf16() if "torch" in sys.modules else None,
                      "written_at": datetime.now(UTC).isoformat(timespec="seconds"), **extra})
    return path
