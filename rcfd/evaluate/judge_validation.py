"""Does the LLM judge's answer mean anything? Each judge question is put to labelled cases built
offline from the use case's own data, where the right answer is known:

  success      movie reviews: IMDB review prefixes, positive (Yes) vs negative (No);
               summaries: the paper's reference summary of the asked aspect (Yes) vs another paper's
               summary of that aspect, or the reference cut in half (No)
  factuality   summaries: the reference (Yes) vs another paper's summary of the aspect (No)
  naturalness  human text (Yes) vs the same text with its words shuffled, its sentences shuffled,
               or turned into a loop of its first words (No)
  verbosity    summaries: the reference padded with the document's opening sentences (Yes) vs the
               reference (No)

Half of each question's cases of one label come from a family harder than those (`hard` in the
case, `HARD` names them):
  success      movie reviews: the review's first `prefix_words` words (less to tell by), both labels;
               summaries: the same paper's summary of another aspect (on topic, wrong request) (No)
  factuality   summaries: the reference's first half followed by another paper's second half (No)
  naturalness  the first half of this human text spliced onto the second half of another (locally
               fluent, globally incoherent) (No)
  verbosity    summaries: the reference padded with the same paper's summary of another aspect (Yes)

The cases are split in two halves by a seeded shuffle. `val` chooses, per question, the wording
the tables use (`select_wording`: the configured one or a variant, by val AUC) and its Yes threshold
on the soft score P(Yes) / (P(Yes) + P(No)) (the best balanced accuracy: the argmax, 0.5, is
degenerate for a judge that answers No to everything); `test` only reports: the AUC of the soft
score (all cases, and Yes vs the hard family), the accuracy of the argmax answer and of the
calibrated threshold. A question is informative when its chosen wording's test AUC reaches
`min_auc`; the tables leave the others out (rcfd.report.tables.apply_judge_validation).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import numpy as np

from ..utils import InputError


@dataclass
class ValidationConfig:
    cases_per_label: int = 40  # labelled cases of each answer per question (half val, half test)
    min_auc: float = 0.70  # a question whose chosen wording's test AUC is below this is not informative
    loop_words: int = 6  # a greedy loop: the text's first words repeated to its length
    prefix_words: int = 20  # movie success's hard family: a review's first words
    seed: int = 0
    # other wordings of a question, question -> {variant name: template}: `select_wording` picks the
    # one the tables use among them and the configured one, on the val half
    variants: dict[str, dict[str, str]] = field(default_factory=dict)


def auc(scores, labels) -> float:
    """Area under the ROC curve: the probability that a random Yes case scores above a random No
    case (ties count a half), from the scores' ranks (Mann-Whitney U)."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    n_yes, n_no = int(y.sum()), int((~y).sum())
    if not n_yes or not n_no:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for value in np.unique(s):  # ties share their mean rank
        tied = s == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[y].sum() - n_yes * (n_yes + 1) / 2) / (n_yes * n_no))


def balanced_accuracy(scores, labels, threshold: float) -> float:
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    return float((np.mean(s[y] > threshold) + np.mean(s[~y] <= threshold)) / 2)


def best_threshold(scores, labels) -> float:
    """The Yes threshold with the best balanced accuracy on (scores, labels): midpoints between
    sorted distinct scores, ties broken towards 0.5."""
    s = np.unique(np.asarray(scores, float))
    candidates = np.concatenate([[s[0] - 1e-9], (s[1:] + s[:-1]) / 2, [s[-1]]]) if s.size else np.array([0.5])
    return float(max(candidates, key=lambda t: (balanced_accuracy(scores, labels, t), -abs(t - 0.5))))


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def corrupted(text: str, kind: str, rng: random.Random, loop_words: int) -> str | None:
    """`text` made unnatural: words shuffled, sentences shuffled (None for one sentence), or a loop
    of its first `loop_words` words as long as the text."""
    words = text.split()
    if kind == "shuffled words":
        return " ".join(rng.sample(words, len(words)))
    if kind == "shuffled sentences":
        parts = _sentences(text)
        if len(parts) < 2:
            return None
        shuffled = parts[:]
        while shuffled == parts:
            rng.shuffle(shuffled)
        return " ".join(shuffled)
    if kind == "loop":
        head = words[:loop_words]
        return " ".join((head * (len(words) // max(1, len(head)) + 1))[: len(words)])
    raise ValueError(kind)


def spliced(first: str, second: str) -> str | None:
    """The first half of `first`'s words followed by the second half of `second`'s (None when
    either has fewer than four words, or the two halves are the same text)."""
    a, b = first.split(), second.split()
    if len(a) < 4 or len(b) < 4:
        return None
    words = a[: len(a) // 2] + b[len(b) // 2:]
    return None if words == a else " ".join(words)


def _case(prompt: str, completion: str, label: int, kind: str, source: str, hard: bool = False) -> dict:
    return {"prompt": prompt, "completion": completion, "label": label, "kind": kind, "source": source,
            "hard": hard}


def _pick(cases: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n of `cases`: half from the hard family where the label has one, the rest from the others."""
    hard, easy = [c for c in cases if c["hard"]], [c for c in cases if not c["hard"]]
    k = min(len(hard), n // 2) if easy else min(len(hard), n)
    picked = rng.sample(hard, k) + rng.sample(easy, min(n - k, len(easy)))
    return picked + rng.sample([c for c in hard if c not in picked], min(n - len(picked), len(hard) - k))


def _balanced(yes: list[dict], no: list[dict], n: int, rng: random.Random) -> list[dict]:
    if len(yes) < 2 or len(no) < 2:
        raise InputError(f"judge validation: too few labelled cases ({len(yes)} Yes, {len(no)} No)")
    return _pick(yes, n, rng) + _pick(no, n, rng)


def naturalness_cases(rows: list[dict], cfg: ValidationConfig, rng: random.Random) -> list[dict]:
    """Human continuations (Yes) and, from other rows' continuations (No), every other one spliced
    with the next row's (the hard family) and the rest corrupted, the easy kinds in turn; the prompt
    is kept, so only the completion differs."""
    rows = rng.sample(rows, len(rows))
    yes = [_case(r["prompt"], r["demo"], 1, "human", r["id"]) for r in rows[: len(rows) // 2]]
    kinds, no, others = ["shuffled words", "shuffled sentences", "loop"], [], rows[len(rows) // 2:]
    for i, r in enumerate(others):
        if i % 2 == 0:
            text = spliced(r["demo"], others[(i + 1) % len(others)]["demo"])
            if text is not None:
                no.append(_case(r["prompt"], " " + text, 0, "spliced", r["id"], hard=True))
            continue
        k = (i // 2) % 3
        for kind in kinds[k:] + kinds[:k]:  # the next kind that applies to this text
            text = corrupted(r["demo"], kind, rng, cfg.loop_words)
            if text is not None and text.split() != r["demo"].split():
                no.append(_case(r["prompt"], " " + text, 0, kind, r["id"]))
                break
    return _balanced(yes, no, cfg.cases_per_label, rng)


def _paper_aspect(row: dict) -> tuple[str, str]:
    paper, aspect = row["id"].rsplit("-", 1)
    return paper, aspect


def _document(prompt: str) -> str:
    """The document of a summarisation prompt ("<instruction>\\n\\n<document>\\n\\nSummary:")."""
    parts = prompt.split("\n\n")
    return parts[1] if len(parts) >= 3 else prompt


def summary_cases(question: str, rows: list[dict], cfg: ValidationConfig, rng: random.Random) -> list[dict]:
    """Labelled (request, summary) cases for a summarisation question (see the module docstring)."""
    if question == "naturalness":
        return naturalness_cases(rows, cfg, rng)
    if question not in ("success", "factuality", "verbosity"):
        return []
    rows = rng.sample(rows, len(rows))
    half = len(rows) // 2
    by_aspect: dict[str, list[dict]] = {}
    by_paper: dict[str, list[dict]] = {}
    for r in rows:
        paper, aspect = _paper_aspect(r)
        by_aspect.setdefault(aspect, []).append(r)
        by_paper.setdefault(paper, []).append(r)

    def other_paper(r):  # another paper's summary of the same aspect
        pool = [o for o in by_aspect[_paper_aspect(r)[1]] if o["id"] != r["id"]]
        return rng.choice(pool)["demo"] if pool else None

    def other_aspect(r):  # the same paper's summary of another aspect
        pool = [o for o in by_paper[_paper_aspect(r)[0]] if o["id"] != r["id"]]
        return rng.choice(pool)["demo"] if pool else None

    yes, no = [], []
    for i, r in enumerate(rows):
        p, hard = r["prompt"], i % 2 == 0  # every other row tries the hard family (the easy one if it has none)
        if question == "verbosity":
            if i >= half:
                no.append(_case(p, r["demo"], 0, "reference", r["id"]))
            elif hard and (other := other_aspect(r)) is not None:
                yes.append(_case(p, f"{r['demo']} {other.strip()}", 1, "padded with another aspect", r["id"], True))
            else:
                lead = " ".join(_sentences(_document(p))[:2])
                yes.append(_case(p, f"{r['demo']} {lead}", 1, "padded with the document", r["id"]))
            continue
        if i < half:
            yes.append(_case(p, r["demo"], 1, "reference", r["id"]))
            continue
        if hard and question == "success" and (other := other_aspect(r)) is not None:
            no.append(_case(p, other, 0, "another aspect of the same paper", r["id"], True))
            continue
        if hard and question == "factuality" and (other := other_paper(r)) is not None \
                and (text := spliced(r["demo"], other)) is not None:
            no.append(_case(p, " " + text, 0, "half another paper's summary", r["id"], True))
            continue
        if question == "success" and i % 4 == 1:
            words = r["demo"].split()
            no.append(_case(p, " " + " ".join(words[: max(1, len(words) // 2)]), 0, "cut in half", r["id"]))
        elif (other := other_paper(r)) is not None:
            no.append(_case(p, other, 0, "another paper's summary", r["id"]))
    return _balanced(yes, no, cfg.cases_per_label, rng)


def sentiment_cases(rm_rows: list[dict], cfg: ValidationConfig, rng: random.Random) -> list[dict]:
    """IMDB review prefixes with their labels (the reward model's data): positive = Yes; every other
    review of each label cut to its first `prefix_words` words (the hard family)."""
    out = {0: [], 1: []}
    for r in rm_rows:
        label = int(r["label"])
        words = r["text"].split()
        hard = len(out[label]) % 2 == 1 and len(words) > cfg.prefix_words
        text = " ".join(words[: cfg.prefix_words]) if hard else r["text"]
        kind = ("positive" if label else "negative") + (" review's first words" if hard else " review")
        out[label].append(_case("", text, label, kind, r["id"], hard))
    return _balanced(out[1], out[0], cfg.cases_per_label, rng)


def labelled_cases(task: str, question: str, rows: list[dict], rm_rows: list[dict] | None,
                   cfg: ValidationConfig) -> list[dict]:
    """The labelled cases of one (task, question), each with `split` val or test; [] when no
    labelled data exist for the question (it is then reported as not validated)."""
    rng = random.Random(f"{cfg.seed}-{task}-{question}")
    if question == "naturalness":
        cases = naturalness_cases(rows, cfg, rng)
    elif task == "summaries":
        cases = summary_cases(question, rows, cfg, rng)
    elif task == "movies" and question == "success" and rm_rows:
        cases = sentiment_cases(rm_rows, cfg, rng)
    else:
        cases = []
    rng.shuffle(cases)
    for i, case in enumerate(sorted(cases, key=lambda c: c["label"])):  # each label split in halves
        case["split"] = "val" if i % 2 == 0 else "test"
    return cases


def hard_auc(soft: np.ndarray, labels: np.ndarray, hard: np.ndarray) -> float:
    """AUC with each label that has hard cases restricted to them (e.g. human text vs the spliced texts only)."""
    keep = np.ones(len(labels), bool)
    for label in (0, 1):
        if (hard & (labels == label)).any():
            keep &= (labels != label) | hard
    return auc(soft[keep], labels[keep]) if hard.any() else float("nan")


def summarise_question(question: str, cases: list[dict], soft: np.ndarray, variant: str = "configured") -> dict:
    """One row of the validation table from the cases' soft scores: the val half's AUC and Yes
    threshold, the test half's AUC (all cases, and with the hard family) and accuracies."""
    nan = float("nan")
    if not cases:
        return {"question": question, "variant": variant, "cases_val": 0, "cases_test": 0, "auc_val": nan,
                "auc_test": nan, "auc_test_hard": nan, "accuracy_argmax_test": nan, "yes_rate_argmax_test": nan,
                "threshold": nan, "accuracy_calibrated_test": nan}
    s, y = np.asarray(soft, float), np.array([c["label"] for c in cases])
    hard = np.array([bool(c.get("hard")) for c in cases])
    val, test = (np.array([c["split"] == k for c in cases]) for k in ("val", "test"))
    threshold = best_threshold(s[val], y[val]) if val.any() else nan
    return {"question": question, "variant": variant, "cases_val": int(val.sum()), "cases_test": int(test.sum()),
            "auc_val": auc(s[val], y[val]), "auc_test": auc(s[test], y[test]),
            "auc_test_hard": hard_auc(s[test], y[test], hard[test]),
            "accuracy_argmax_test": float(np.mean((s[test] > 0.5) == y[test])),
            "yes_rate_argmax_test": float(np.mean(s[test] > 0.5)),
            "threshold": threshold,
            "accuracy_calibrated_test": float(np.mean((s[test] > threshold) == y[test]))}


def select_wording(rows: list[dict], min_auc: float) -> list[dict]:
    """The rows of the validation table with `selected` (per question, the wording the tables use:
    the best val AUC, the configured wording on ties or when none has one) and `informative` (the
    selected wording's test AUC reaches `min_auc`). The choice reads the val half's AUC only; the
    test half then reports on the one wording chosen."""
    def rank(r):  # val AUC (none: lowest), then the configured wording
        return (r["auc_val"] if r["auc_val"] == r["auc_val"] else -1.0, r["variant"] == "configured")

    best: dict[str, dict] = {}
    for r in rows:
        if r["question"] not in best or rank(r) > rank(best[r["question"]]):
            best[r["question"]] = r
    return [dict(r, selected=r is best[r["question"]],
                 informative=bool(r is best[r["question"]] and r["auc_test"] >= min_auc)) for r in rows]


def used_rows(validation: list[dict]) -> list[dict]:
    """The validation table's row of each question the tables use: the selected wording (a table
    written before `select_wording` existed: the configured one)."""
    if validation and "selected" in validation[0]:
        return [r for r in validation if str(r["selected"]).lower() == "true"]
    return [r for r in validation if not isinstance(r.get("variant"), str) or r["variant"] == "configured"]


def informative(validation: list[dict]) -> set[str]:
    """The questions whose selected wording the validation found informative."""
    return {r["question"] for r in used_rows(validation) if str(r["informative"]).lower() == "true"}


def wording(judge: dict, question: str, variant) -> str:
    """The template of `question` in `variant` (config evaluate.judge.questions / validation.variants)."""
    if not isinstance(variant, str) or variant == "configured":
        return judge["questions"][question]
    variants = judge.get("validation", {}).get("variants", {}).get(question, {})
    if variant not in variants:
        raise InputError(f"evaluate.judge.validation.variants.{question}: no wording {variant!r}, which the judge's "
                         "validation selected; rerun validate_judge")
    return variants[variant]


def informative_questions(judge: dict, validation: list[dict], where: str) -> dict:
    """The judge's settings (config `evaluate.judge`) with only the questions its validation table
    (rows of `results/judge/<task>.csv`, read from `where`) found informative, each in its selected
    wording: every table leaves the others out, so with `informative_only` they are not asked."""
    used = {r["question"]: r for r in used_rows(validation)}
    missing = set(judge.get("questions", {})) - set(used)
    if missing:
        raise InputError(f"{where}: no validation of the judge question(s) {sorted(missing)}; rerun validate_judge")
    return {**judge, "questions": {q: wording(judge, q, used[q].get("variant")) for q in judge["questions"]
                                   if q in informative(validation)}}
