"""Prompts, demonstrations and reward-model data.

Movie reviews (paper use case 2a): a prompt is the first `prompt_tokens` policy tokens of a
positive review, the rest of the review is that prompt's human demonstration. The reviews that
are not used as prompts (positive and negative) train the sentiment reward model, so the reward
model never saw a demonstration.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from .utils import InputError, log


@dataclass
class MovieDataConfig:
    source: str = "vader_snippets"  # "vader_snippets" (offline) or "hub" (e.g. imdb at paper scale)
    hub_id: str = "imdb"
    hub_split: str = "train"
    prompt_tokens: int = 10  # paper: first 10 tokens of a positive review
    min_demo_tokens: int = 4  # a demonstration shorter than this is dropped
    max_demo_tokens: int = 160  # paper: at most 160 new tokens
    positive_threshold: float = 0.5  # vader snippets: mean human rating > this is "positive"
    negative_threshold: float = -0.5  # ... and < this is "negative"; the rest is ambiguous, unused
    n_train_prompts: int = 512
    n_eval_prompts: int = 128
    rm_eval_fraction: float = 0.1
    max_rm_examples: int | None = None  # cap the RM training set (smoke scale)
    seed: int = 0


def read_vader_snippets(path: str | Path) -> list[dict]:
    """movieReviewSnippets_GroundTruth.txt: `id<TAB>mean rating<TAB>text`, ratings in [-4, 4]."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise InputError(f"{path}:{lineno}: expected 3 tab-separated fields, got {len(parts)}")
            try:
                rating = float(parts[1])
            except ValueError:
                raise InputError(f"{path}:{lineno}: rating {parts[1]!r} is not a number") from None
            rows.append({"id": parts[0], "rating": rating, "text": parts[2].strip()})
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def read_hub_reviews(cfg: MovieDataConfig) -> list[dict]:
    """IMDB-style hub data set (text, label 0/1) mapped to the snippet schema (rating ±1)."""
    from datasets import load_dataset

    ds = load_dataset(cfg.hub_id, split=cfg.hub_split)
    return [{"id": str(i), "rating": 1.0 if r["label"] == 1 else -1.0, "text": r["text"]}
            for i, r in enumerate(ds)]


def split_prompt(text: str, tokenizer, prompt_tokens: int) -> tuple[str, str, int] | None:
    """Cut `text` after its first `prompt_tokens` tokens, at a character offset so that
    prompt + demo == text exactly. Returns (prompt, demo, demo_token_count) or None if too short."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= prompt_tokens:
        return None
    cut = offsets[prompt_tokens][0]
    return text[:cut], text[cut:], len(offsets) - prompt_tokens


def prepare_movies(cfg: MovieDataConfig, reviews: list[dict], tokenizer) -> tuple[list[dict], list[dict]]:
    """Returns (prompts, rm_data).

    prompts: {id, split: train|eval, prompt, demo, demo_tokens, rating}
    rm_data: {id, split: train|eval, text, label}
    """
    rng = random.Random(cfg.seed)
    positives = [r for r in reviews if r["rating"] > cfg.positive_threshold]
    negatives = [r for r in reviews if r["rating"] < cfg.negative_threshold]
    rng.shuffle(positives)

    prompts, used = [], set()
    need = cfg.n_train_prompts + cfg.n_eval_prompts
    for review in positives:
        if len(prompts) == need:
            break
        cut = split_prompt(review["text"], tokenizer, cfg.prompt_tokens)
        if cut is None or not cfg.min_demo_tokens <= cut[2] <= cfg.max_demo_tokens:
            continue
        split = "eval" if len(prompts) < cfg.n_eval_prompts else "train"
        prompts.append({"id": review["id"], "split": split, "prompt": cut[0], "demo": cut[1],
                        "demo_tokens": cut[2], "rating": review["rating"]})
        used.add(review["id"])
    if len(prompts) < need:
        raise InputError(
            f"movies data: only {len(prompts)} positive reviews fit prompt_tokens={cfg.prompt_tokens}, "
            f"min_demo_tokens={cfg.min_demo_tokens}; the config asks n_train_prompts + n_eval_prompts = {need}"
        )

    rest = [dict(r, label=1) for r in positives if r["id"] not in used]
    rest += [dict(r, label=0) for r in negatives]
    rest.sort(key=lambda r: r["id"])
    rng.shuffle(rest)
    if cfg.max_rm_examples is not None:
        rest = rest[: cfg.max_rm_examples]
    n_eval = max(1, int(len(rest) * cfg.rm_eval_fraction))
    rm_data = [{"id": r["id"], "split": "eval" if i < n_eval else "train", "text": r["text"],
                "label": r["label"]} for i, r in enumerate(rest)]
    log.info("movies: %d prompts (%d eval), %d reward-model examples (%d eval, %.0f%% positive)",
             len(prompts), cfg.n_eval_prompts, len(rm_data), n_eval,
             100 * sum(r["label"] for r in rm_data) / max(1, len(rm_data)))
    return prompts, rm_data
