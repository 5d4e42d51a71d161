"""Near-copies of a text: word n-gram shingles and how many two texts share.

A text's shingles are its lower-cased word n-grams (`\\w+` words, so punctuation and markup do
not matter; a text of fewer than n words is one shingle of all its words). Two texts are
near-copies when the smaller shingle set shares at least `threshold` of its shingles with the
other: overlap(a, b) = |S_a ∩ S_b| / min(|S_a|, |S_b|). This is stricter than Jaccard (a text
contained in a longer one counts) and reads as "the text shares >= 50% of its 8-grams with
another", the test-set-leak criterion of the data step. It is exact: an inverted index from each
shingle to the texts that have it counts the shared shingles of every candidate pair, no hashing or
sampling (IMDB's 25,000 reviews: 17 s on one CPU core).

The data steps (rcfd.data.movies, wiki, summaries) use it twice: `without_near_copies` drops near-copies among the source
texts before splitting, and `check_disjoint` refuses prepared data in which a text of one split is a
near-copy of a text of another; `near_copy_report` is the step's metrics.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from ..utils import InputError, log

_WORD = re.compile(r"\w+")


@dataclass
class DedupConfig:
    ngram: int = 8  # words per shingle
    threshold: float = 0.5  # near-copies share at least this fraction of the smaller text's shingles


def shingles(text: str, n: int) -> frozenset[str]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))


def overlap(a: frozenset, b: frozenset) -> float:
    """|a ∩ b| / min(|a|, |b|); 0 when either is empty."""
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


class ShingleIndex:
    """Texts added one by one; `nearest` finds the added text that shares most with a query."""

    def __init__(self, n: int):
        self.n = n
        self.postings: dict[str, list[int]] = defaultdict(list)
        self.sizes: list[int] = []

    def add(self, s: frozenset) -> int:
        """Index one text's shingles; returns its position."""
        k = len(self.sizes)
        self.sizes.append(len(s))
        for g in s:
            self.postings[g].append(k)
        return k

    def nearest(self, s: frozenset, skip=lambda k: False) -> tuple[int | None, float]:
        """(position, overlap) of the indexed text with the largest overlap with `s` among those
        `skip` does not exclude; (None, 0.0) when none shares a shingle."""
        shared = Counter(k for g in s if g in self.postings for k in self.postings[g])
        best, best_overlap = None, 0.0
        for k, c in shared.items():
            o = c / min(len(s), self.sizes[k])
            if o > best_overlap and not skip(k):
                best, best_overlap = k, o
        return best, best_overlap


def drop_near_duplicates(texts: list[str], cfg: DedupConfig) -> tuple[list[int], int]:
    """Keep the first of every group of near-copies, in the given order: returns (the positions
    kept, how many were dropped). An empty text (no word) is kept: it has nothing to share."""
    index, kept = ShingleIndex(cfg.ngram), []
    for i, text in enumerate(texts):
        s = shingles(text, cfg.ngram)
        if s and index.nearest(s)[1] >= cfg.threshold:
            continue
        index.add(s)
        kept.append(i)
    return kept, len(texts) - len(kept)


def cross_split_copies(groups: dict[str, list[str]], cfg: DedupConfig) -> tuple[list[tuple], float]:
    """Near-copies across groups (splits): [(group, text, other group, other text, overlap)] for
    every text with a near-copy in another group, and the largest overlap between two texts of
    different groups (the data's leak margin, reported in the data step's metrics)."""
    index, owner, texts = ShingleIndex(cfg.ngram), [], []
    for name, group in groups.items():
        for text in dict.fromkeys(group):  # a text repeated inside its split: once
            index.add(shingles(text, cfg.ngram))
            owner.append(name)
            texts.append(text)
    copies, largest = [], 0.0
    for k, text in enumerate(texts):
        other, o = index.nearest(shingles(text, cfg.ngram), skip=lambda j, k=k: owner[j] == owner[k])
        largest = max(largest, o)
        if other is not None and o >= cfg.threshold:
            copies.append((owner[k], text, owner[other], texts[other], o))
    return copies, largest


def check_disjoint(groups: dict[str, list[str]], where: str, cfg: DedupConfig | None = None) -> float:
    """Refuse data in which a text of one split is a copy or a near-copy of a text of another (a
    test-set leak); returns the largest share of n-grams two texts of different splits have in common."""
    cfg = cfg or DedupConfig()
    copies, largest = cross_split_copies(groups, cfg)
    if copies:
        split, text, other_split, other, share = copies[0]
        what = "is in both" if share == 1 else f"shares {share:.0%} of its word {cfg.ngram}-grams with a text of"
        raise InputError(f"{where}: the text {text[:60]!r}... {what} {split} and {other_split} "
                         f"({other[:60]!r}...; {len(copies)} such text(s))")
    return largest


def near_copy_report(texts: list[str], kept: list[int], largest: float, cfg: DedupConfig, **counts) -> dict:
    """The data step's metrics: how many source texts, how many dropped as near-copies, the largest
    overlap left between two splits, and the split sizes."""
    report = {"source_texts": len(texts), "near_copies_dropped": len(texts) - len(kept),
              "near_copy_ngram": cfg.ngram, "near_copy_threshold": cfg.threshold,
              "largest_cross_split_overlap": round(largest, 4), **counts}
    log.info("near-copies: %d of %d source texts dropped (word %d-grams, overlap >= %g); largest overlap left "
             "between two splits %.2f", report["near_copies_dropped"], len(texts), cfg.ngram, cfg.threshold, largest)
    return report


def without_near_copies(items: list[dict], text, cfg: DedupConfig) -> tuple[list[dict], list[int], list[str]]:
    """`items` without near-copies, the first of each kept (in the order given); also the kept
    positions and every item's text (for the report)."""
    texts = [text(i) for i in items]
    kept, _ = drop_near_duplicates(texts, cfg)
    return [items[k] for k in kept], kept, texts


def split_sizes(rows: list[dict], name: str) -> dict[str, int]:
    """{<name>_train: n, <name>_eval: n}: the rows per split, for the data step's report."""
    return {f"{name}_{s}": sum(r["split"] == s for r in rows) for s in ("train", "eval")}


@dataclass
class NearCopyConfig:
    """Near-copy detection of a data step (rcfd.data.dedup), for every use case."""

    near_copy_ngram: int = 8  # words per shingle
    near_copy_threshold: float = 0.5  # near-copies share at least this fraction of the smaller text's shingles

    @property
    def dedup(self) -> DedupConfig:
        return DedupConfig(self.near_copy_ngram, self.near_copy_threshold)
