"""Shared fixtures: tiny real models (random weights, a locally trained tokenizer)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the bf16 code paths (cpu_bf16 settings) run on any CPU, emulated where it has no native bf16, so that
# the suite tests what an AVX512-BF16/AMX host runs (rcfd.utils.native_cpu_bf16); the smoke DAG inherits it
os.environ.setdefault("RCFD_NATIVE_CPU_BF16", "1")
REPO = Path(__file__).resolve().parents[1]

CORPUS = [
    f"{a} {b} film was {c} and the {d} kept me {e}."
    for a in ("This", "That", "The first", "Her new")
    for b in ("quiet", "loud", "long", "short")
    for c in ("wonderful", "dull", "moving", "a mess")
    for d in ("cast", "score", "ending")
    for e in ("smiling", "awake", "bored")
]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    from rcfd.assets import TinyModelConfig, build_tiny_model

    root = tmp_path_factory.mktemp("models")
    paths = {}
    for arch in ("llama", "bert"):
        cfg = TinyModelConfig(arch=arch, vocab_size=320, hidden_size=32, num_layers=1, num_heads=2,
                              intermediate_size=64, max_positions=128)
        paths[arch] = str(build_tiny_model(cfg, CORPUS, root / arch))
    return paths
