import random

import numpy as np
import pytest
from scipy.stats import entropy

from rcfd.evaluate.metrics import AlignmentConfig, alignment_score, distinct_n, histograms, self_bleu


def test_alignment_score_is_scipy_kl_of_the_shared_histograms():
    rng = np.random.default_rng(0)
    demo, pol = rng.normal(0, 1, 500), rng.normal(0.5, 1.5, 700)
    cfg = AlignmentConfig(bins=15, smoothing=0.5)
    p, q = histograms(demo, pol, cfg.bins, cfg.smoothing)
    assert alignment_score(demo, pol, cfg) == pytest.approx(entropy(p, q))  # KL(p || q)


def test_alignment_score_recovers_a_known_gaussian_kl():
    # KL(N(0,1) || N(1,1)) = 0.5 nats; KL(N(0,1) || N(0,2^2)) = log 2 + 1/8 - 1/2
    rng = np.random.default_rng(1)
    demo = rng.normal(0, 1, 200_000)
    cfg = AlignmentConfig(bins=60, smoothing=0.5)
    assert alignment_score(demo, rng.normal(1, 1, 200_000), cfg) == pytest.approx(0.5, abs=0.03)
    assert alignment_score(demo, rng.normal(0, 2, 200_000), cfg) == pytest.approx(np.log(2) - 0.375, abs=0.03)


def test_alignment_score_properties():
    rng = np.random.default_rng(2)
    demo = rng.normal(0, 1, 2000)
    same = alignment_score(demo, rng.normal(0, 1, 2000))
    far = alignment_score(demo, rng.normal(3, 1, 2000))
    assert same < 0.02 < far
    # disjoint supports stay finite thanks to smoothing
    assert np.isfinite(alignment_score([0.0, 0.1, 0.2], [5.0, 5.1]))
    # forward KL is asymmetric: a policy that covers the demos costs less than one that misses them
    narrow, wide = rng.normal(0, 0.3, 5000), rng.normal(0, 1.5, 5000)
    assert alignment_score(narrow, wide) < alignment_score(wide, narrow)
    with pytest.raises(ValueError):
        alignment_score([], [1.0])


def test_distinct_n_by_hand():
    texts = ["a b a b", "a b c"]
    # unigrams a,b,a,b,a,b,c: 3 distinct / 7; bigrams ab,ba,ab,ab,bc: 3 distinct / 5
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)
    assert distinct_n(texts, 3) == pytest.approx(3 / 3)  # aba, bab, abc
    assert distinct_n(["a"], 2) == 0.0


def test_self_bleu():
    same = ["the film was a joy to watch"] * 5
    assert self_bleu(same) == pytest.approx(100.0)
    varied = ["the film was a joy", "terrible acting all round", "music by a genius", "slow but honest work"]
    assert self_bleu(varied) < 20
    assert self_bleu(["only one"]) == 0.0
    # two sentences: each one's BLEU against the other, by hand with sacrebleu
    from sacrebleu.metrics import BLEU

    a, b = "the film was a joy", "the film was a bore"
    bleu = BLEU(tokenize="none", smooth_method="exp", effective_order=True)
    expected = (bleu.sentence_score(a, [b]).score + bleu.sentence_score(b, [a]).score) / 2
    assert self_bleu([a, b, "  "]) == pytest.approx(expected)  # blank texts are left out
    # the subsample depends on its seed only, not on the global random state
    many = [f"sentence number {i} here" for i in range(50)]
    random.seed(1)
    first = self_bleu(many, max_samples=10, seed=0)
    random.seed(2)
    assert self_bleu(many, max_samples=10, seed=0) == first


def test_self_bleu_equals_sacrebleu_sentence_score_against_all_others():
    """The single-pass n-gram counting is exact: same number as sacrebleu's own sentence_score against
    every other text, including repeated n-grams shared by several texts (ties for the largest count),
    trailing spaces and a text shorter than the n-gram order."""
    from sacrebleu.metrics import BLEU

    rng = random.Random(0)
    words = "the a film was joy bore good bad very it".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 25))) + rng.choice(["", " "])
             for _ in range(40)]
    texts += ["the the the film", "the the the film", "a"]
    bleu = BLEU(tokenize="none", smooth_method="exp", effective_order=True)
    expected = np.mean([bleu.sentence_score(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts)])
    assert self_bleu(texts) == pytest.approx(expected, rel=1e-12)


def test_vader_success():
    from rcfd.evaluate.metrics import vader_success

    assert vader_success(["A wonderful, moving film.", "Dull, ugly and a waste of time.", "A film."]) == \
        pytest.approx(1 / 3)


def test_seq_repetition_by_hand():
    from rcfd.evaluate.metrics import seq_repetition

    assert seq_repetition(["a b c d e f"]) == 0.0  # 3 four-grams, all distinct
    # "a b a b a b": 4-grams (a b a b), (b a b a), (a b a b) -> 1 - 2/3
    assert seq_repetition(["a b a b a b"]) == pytest.approx(1 / 3)
    assert seq_repetition(["a b a b a b", "a b c d e f", "short"]) == pytest.approx(1 / 6)  # "short" has none
    assert seq_repetition(["x"]) == 0.0


def test_position_curve_by_hand():
    from rcfd.evaluate.metrics import position_curve

    rows = position_curve([[-1.0, -2.0, -3.0], [-3.0, -4.0]], window=2)
    assert rows == [
        {"start": 0, "end": 2, "mean_logprob": pytest.approx(-2.5), "n_texts": 2},
        {"start": 2, "end": 4, "mean_logprob": pytest.approx(-3.0), "n_texts": 1},
    ]
    assert position_curve([], window=4) == []


def test_calibration_decomposition_matches_numpy():
    from rcfd.evaluate.metrics import calibration_decomposition

    rng = np.random.default_rng(0)
    n_prompts, k = 50, 4
    d = rng.normal(1.0, 0.7, n_prompts)
    r = 0.4 * d[:, None] + rng.normal(0.5, 0.3, (n_prompts, k))  # samples per prompt, correlated with d
    ids = np.repeat([f"p{i}" for i in range(n_prompts)], k)
    got = calibration_decomposition(ids, r.ravel(), np.repeat(d, k))
    m = r.mean(1)
    want = {"mse": np.mean((r - d[:, None]) ** 2), "bias2": (m.mean() - d.mean()) ** 2,
            "var_within": r.var(1).mean(), "var_between": m.var(), "var_demo": d.var(),
            "cov": np.cov(m, d, bias=True)[0, 1], "corr": np.corrcoef(np.repeat(d, k), r.ravel())[0, 1]}
    assert got == pytest.approx(want, rel=1e-10)
    # the identity the table explains A with
    assert got["mse"] == pytest.approx(got["bias2"] + got["var_within"] + got["var_between"] + got["var_demo"]
                                       - 2 * got["cov"], rel=1e-10)


def test_near_max_fraction():
    from rcfd.evaluate.metrics import near_max_fraction

    assert near_max_fraction([0, 1, 2, 9.6, 10]) == pytest.approx(0.4)  # 9.6 and 10 are within 0.5 of 10
    assert near_max_fraction([3, 3]) == 1.0
