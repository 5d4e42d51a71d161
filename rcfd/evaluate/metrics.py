"""Evaluation metrics: alignment score A, average reward, diversity (distinct-n, self-BLEU),
repetition within a text (seq-rep-n), log-likelihood as a function of position, MAUVE between
generations and demonstrations, and VADER success (a lexicon proxy of the judge's success question;
the LLM judge itself is rcfd/evaluate/judge.py). Every sample counts in every metric: an empty one is scored
by EMPTY_RULE, never dropped.

Alignment score (paper §4): A = KL(rho_demo || rho_policy), the forward KL from the distribution of
the demonstrations' rewards to the distribution of the policy's rewards on the same held-out
prompts. The paper does not state its density estimator; we use a histogram with `bins` equal-width
bins over the range of the pooled rewards (both samples share the bins), with `smoothing` added
to every bin count before normalising so that an empty policy bin gives a finite KL.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import numpy as np

EMPTY_RULE = ("an empty sample (no token) scores the lowest reward and log-likelihood of its evaluation set: the "
              "run's non-empty samples and the demonstrations")


def worst_for_empty(values: list[float], empty: list[bool], reference: list[float]) -> list[float]:
    """EMPTY_RULE: each empty sample's value is the lowest of the run's non-empty samples' values
    and `reference` (the demonstrations'), so that every sample counts in every mean and in A:
    dropping an empty answer would hide it, and its log-likelihood (a mean over no token) is undefined."""
    lowest = min([v for v, e in zip(values, empty) if not e] + list(reference))
    return [lowest if e else v for v, e in zip(values, empty)]


@dataclass
class AlignmentConfig:
    bins: int = 20
    smoothing: float = 0.5  # additive (Laplace-style) pseudo-count per bin


def histograms(demo, policy, bins: int, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed probability histograms of two samples on shared equal-width bins."""
    demo, policy = np.asarray(demo, float), np.asarray(policy, float)
    if demo.size == 0 or policy.size == 0:
        raise ValueError("alignment score needs at least one demonstration and one policy reward")
    lo, hi = min(demo.min(), policy.min()), max(demo.max(), policy.max())
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    p = np.histogram(demo, edges)[0] + smoothing
    q = np.histogram(policy, edges)[0] + smoothing
    return p / p.sum(), q / q.sum()


def alignment_score(demo_rewards, policy_rewards, cfg: AlignmentConfig | None = None) -> float:
    """A = KL(rho_demo || rho_policy) in nats (lower is better; 0 = same distribution)."""
    cfg = cfg or AlignmentConfig()
    p, q = histograms(demo_rewards, policy_rewards, cfg.bins, cfg.smoothing)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def near_max_fraction(scores, frac: float = 0.05) -> float:
    """Fraction of scores within `frac` of the score range of the maximum: how much a reward
    model saturates (a bounded head piles its best texts at the ceiling)."""
    x = np.asarray(scores, float)
    lo, hi = x.min(), x.max()
    return float(np.mean(x >= hi - frac * (hi - lo))) if hi > lo else 1.0


def calibration_decomposition(prompt_ids, rewards, demo_rewards) -> dict[str, float]:
    """Where a policy's squared error to its own demonstration's reward comes from (what RCfD
    minimises): with r_ij the reward of sample j of prompt i, m_i its prompt's mean and d_i the
    prompt's demonstration reward, every prompt weighted equally and variances over prompts,

        mse = mean_ij (r_ij - d_i)^2
            = bias^2 + within + var(m) + var(d) - 2 cov(m, d),   bias = mean(m) - mean(d),

    within = mean_i var_j(r_ij), the policy's reward spread inside one prompt. `corr` is the
    correlation of d_i with the samples' rewards r_ij (how much the prompt predicts its target)."""
    import pandas as pd

    frame = pd.DataFrame({"id": list(prompt_ids), "r": np.asarray(rewards, float), "d": np.asarray(demo_rewards, float)})
    if frame.empty or not np.isfinite(frame[["r", "d"]].to_numpy()).all():
        raise ValueError("calibration decomposition needs finite rewards, one or more (rcfd.evaluate.metrics.EMPTY_RULE)")
    per_prompt = frame.groupby("id", sort=False).agg(m=("r", "mean"), within=("r", lambda r: r.var(ddof=0)),
                                                     d=("d", "first"), se=("r", "size"))
    per_prompt["se"] = frame.assign(se=(frame["r"] - frame["d"]) ** 2).groupby("id", sort=False)["se"].mean()
    m, d = per_prompt["m"].to_numpy(), per_prompt["d"].to_numpy()
    cov = float(np.mean((m - m.mean()) * (d - d.mean())))
    corr = float(np.corrcoef(frame["d"], frame["r"])[0, 1]) if frame["r"].std() > 0 and frame["d"].std() > 0 \
        else float("nan")
    return {"mse": float(per_prompt["se"].mean()), "bias2": float((m.mean() - d.mean()) ** 2),
            "var_within": float(per_prompt["within"].mean()), "var_between": float(m.var()),
            "var_demo": float(d.var()), "cov": cov, "corr": corr}


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over a set of texts (whitespace tokens)."""
    grams = Counter()
    for t in texts:
        toks = t.split()
        grams.update(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def self_bleu(texts: list[str], max_samples: int = 200, seed: int = 0) -> float:
    """Mean sentence BLEU (0-100) of each text against all the others (higher = less diverse).

    Whitespace tokens ('none' tokenizer), smoothed with exp, so nothing downloads at run time.
    Texts are subsampled to `max_samples` (BLEU against all others is quadratic).

    Equal to sacrebleu's `sentence_score(text, others)` for every text, but each text's n-grams are
    counted once: sentence_score re-extracts all 199 references' n-grams per hypothesis (4.4 s of a
    Wikipedia evaluate job; now 0.04 s). A reference n-gram's clipping count is its largest count in
    any *other* text, which the top two counts per n-gram give.
    """
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        return 0.0
    if len(texts) > max_samples:
        texts = random.Random(seed).sample(texts, max_samples)
    bleu = BLEU(tokenize="none", smooth_method="exp", effective_order=True)
    order = bleu.max_ngram_order
    grams, lens = zip(*(extract_all_word_ngrams(t.rstrip(), 1, order) for t in texts))
    top: dict[tuple, tuple[int, int, int]] = {}  # n-gram -> (largest count, its text, second largest)
    for i, counts in enumerate(grams):
        for gram, c in counts.items():
            best, holder, second = top.get(gram, (0, -1, 0))
            if c > best:
                top[gram] = (c, i, best)
            elif c > second:
                top[gram] = (best, holder, c)
    scores = []
    for i, counts in enumerate(grams):
        correct, total = [0] * order, [0] * order
        for gram, c in counts.items():
            best, holder, second = top[gram]
            total[len(gram) - 1] += c
            correct[len(gram) - 1] += min(c, second if holder == i else best)
        # sacrebleu's closest reference length: smallest difference, ties to the shorter
        ref_len = min(lens[:i] + lens[i + 1:], key=lambda r: (abs(lens[i] - r), r))
        scores.append(bleu.compute_bleu(correct, total, sys_len=lens[i], ref_len=ref_len, smooth_method=bleu.smooth_method,
                                        smooth_value=bleu.smooth_value, effective_order=bleu.effective_order,
                                        max_ngram_order=order).score)
    return float(np.mean(scores))


def diversity(texts: list[str], self_bleu_samples: int = 200, seed: int = 0) -> dict[str, float]:
    return {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "self_bleu": self_bleu(texts, self_bleu_samples, seed),
    }


def seq_repetition(texts: list[str], n: int = 4) -> float:
    """seq-rep-n (Welleck et al. 2020): per text, 1 - distinct n-grams / n-grams; mean over texts
    that have an n-gram. 0 for text that never repeats itself, near 1 for a loop."""
    reps = []
    for t in texts:
        toks = t.split()
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        if grams:
            reps.append(1.0 - len(set(grams)) / len(grams))
    return float(np.mean(reps)) if reps else 0.0


def position_curve(token_logprobs: list[list[float]], window: int, min_share: float = 0.5) -> list[dict]:
    """Mean log-likelihood per token in consecutive windows of generated positions: rows
    {start, end, mean_logprob, n_texts} (positions [start, end), texts long enough to reach start).
    Windows reached by fewer than `min_share` of the texts are left out: a few long outliers
    (re-tokenised text can be longer than the generation) would make a noisy tail."""
    longest = max((len(t) for t in token_logprobs), default=0)
    rows = []
    for start in range(0, longest, window):
        n_texts = sum(len(t) > start for t in token_logprobs)
        if n_texts < min_share * len(token_logprobs):
            break
        chunk = [lp for t in token_logprobs for lp in t[start:start + window]]
        rows.append({"start": start, "end": start + window, "mean_logprob": float(np.mean(chunk)), "n_texts": n_texts})
    return rows


def vader_success(texts: list[str], threshold: float = 0.05) -> float:
    """Success proxy for "is this movie review positive?": the fraction of texts whose VADER
    compound polarity is >= threshold (VADER's own cut-off). A lexicon scorer, independent of
    the learned reward model, so it cannot be hacked the same way."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return float(np.mean([analyzer.polarity_scores(t)["compound"] >= threshold for t in texts]))


@dataclass
class MauveConfig:
    """MAUVE (Pillutla et al. 2021, `mauve-text`) on features computed here: mean-pooled hidden states
    of a local sentence encoder (mauve's own text mode downloads gpt2-large). Fixed seed:
    deterministic for given features."""

    model: str = "reward_base"  # the `models` key of the encoder (the workflow passes its folder or hub id)
    label: str = ""  # how tables name the features
    num_buckets: int | str = "auto"  # k-means clusters; "auto" = min(n_p, n_q) / 10
    explained_variance: float = 0.9  # PCA variance kept before k-means
    kmeans_num_redo: int = 5
    kmeans_max_iter: int = 500
    scaling_factor: float = 5.0  # mauve's c
    seed: int = 25  # mauve's default
    batch_size: int = 64
    max_length: int = 256
    device: str = "auto"


def sentence_features(path: str, texts: list[str], batch_size: int = 64, max_length: int = 256,
                      device: str = "cpu") -> np.ndarray:
    """Attention-masked mean of an encoder's last hidden states (sentence-transformers' pooling)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).to(device).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt").to(device)
            hidden = model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy())
    return np.concatenate(out)


def mauve_score(p_features: np.ndarray, q_features: np.ndarray, cfg: MauveConfig | None = None) -> float:
    """MAUVE in (0, 1]: 1 when the two feature clouds fall into the same k-means buckets in the
    same proportions, near 0 when they share none."""
    cfg = cfg or MauveConfig()
    import logging

    import torch

    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # not its tries of missing AVX builds
    import faiss
    import mauve

    faiss.omp_set_num_threads(torch.get_num_threads())  # the job's --threads
    out = mauve.compute_mauve(
        p_features=np.asarray(p_features, np.float32), q_features=np.asarray(q_features, np.float32),
        num_buckets=cfg.num_buckets, kmeans_explained_var=cfg.explained_variance,
        kmeans_num_redo=cfg.kmeans_num_redo, kmeans_max_iter=cfg.kmeans_max_iter,
        mauve_scaling_factor=cfg.scaling_factor, seed=cfg.seed, verbose=False)
    return float(out.mauve)
