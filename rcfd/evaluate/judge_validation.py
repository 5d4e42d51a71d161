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

The cases are split in two halves by a seeded shuffle: `val` chooses the Yes threshold on the soft
score P(Yes) / (P(Yes) + P(No)) (the one with the best balanced accuracy: the argmax, 0.5, is
degenerate for a judge that answers No to everything), `test` reports the AUC of the soft score and
the accuracy of the argmax answer and of the calibrated threshold. A question is informative when
its test AUC reaches `min_auc`; the tables leave the others out (rcfd.report.tables.apply_judge_validation).
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
    min_auc: float = 0.65  # a question whose test AUC is below this is not informative
    loop_words: int = 6  # a greedy loop: the text's first words repeated to its length
    seed: int = 0
    # other wordings to compare on the same cases, question -> {variant name: template}; the tables
    # use the configured question: a better variant is adopted by putting it in the config
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


def _case(prompt: str, completion: str, label: int, kind: str, source: str) -> dict:
    return {"prompt": prompt, "completion": completion, "label": label, "kind": kind, "source": source}


def _balanced(yes: list[dict], no: list[dict], n: int, rng: random.Random) -> list[dict]:
    if len(yes) < 2 or len(no) < 2:
        raise InputError(f"judge validation: too few labelled cases ({len(yes)} Yes, {len(no)} No)")
    return rng.sample(yes, min(n, len(yes))) + rng.sample(no, min(n, len(no)))


def naturalness_cases(rows: list[dict], cfg: ValidationConfig, rng: random.Random) -> list[dict]:
    """Human continuations (Yes) and corruptions of other rows' continuations (No), kinds in turn;
    the prompt is kept, so only the completion differs."""
    rows = rng.sample(rows, len(rows))
    yes = [_case(r["prompt"], r["demo"], 1, "human", r["id"]) for r in rows[: len(rows) // 2]]
    kinds, no = ["shuffled words", "shuffled sentences", "loop"], []
    for i, r in enumerate(rows[len(rows) // 2:]):
        for kind in kinds[i % 3:] + kinds[: i % 3]:  # the next kind that applies to this text
            text = corrupted(r["demo"], kind, rng, cfg.loop_words)
            if text is not None and text.split() != r["demo"].split():
                no.append(_case(r["prompt"], " " + text, 0, kind, r["id"]))
                break
    return _balanced(yes, no, cfg.cases_per_label, rng)


def _aspect(row: dict) -> str:
    return row["id"].rsplit("-", 1)[1]


def _document(prompt: str) -> str:
    """The document of a summarisation prompt ("<instruction>\\n\\n<document>\\n\\nSummary:")."""
    parts = prompt.split("\n\n")
    return parts[1] if len(parts) >= 3 else prompt


def summary_cases(question: str, rows: list[dict], cfg: ValidationConfig, rng: random.Random) -> list[dict]:
    """Labelled (request, summary) cases for a summarisation question (see the module docstring)."""
    if question == "naturalness":
        return naturalness_cases(rows, cfg, rng)
    rows = rng.sample(rows, len(rows))
    half = len(rows) // 2
    by_aspect: dict[str, list[dict]] = {}
    for r in rows:
        by_aspect.setdefault(_aspect(r), []).append(r)

    def other_summary(r):
        pool = [o for o in by_aspect[_aspect(r)] if o["id"] != r["id"]]
        return rng.choice(pool)["demo"] if pool else None

    yes, no = [], []
    for i, r in enumerate(rows):
        first = i < half
        if question in ("success", "factuality"):
            if first:
                yes.append(_case(r["prompt"], r["demo"], 1, "reference", r["id"]))
                continue
            words = r["demo"].split()
            if question == "success" and i % 2:
                no.append(_case(r["prompt"], " " + " ".join(words[: max(1, len(words) // 2)]), 0, "cut in half",
                                r["id"]))
            elif (other := other_summary(r)) is not None:
                no.append(_case(r["prompt"], other, 0, "another paper's summary", r["id"]))
        elif question == "verbosity":
            if first:
                lead = " ".join(_sentences(_document(r["prompt"]))[:2])
                yes.append(_case(r["prompt"], f"{r['demo']} {lead}", 1, "padded with the document", r["id"]))
            else:
                no.append(_case(r["prompt"], r["demo"], 0, "reference", r["id"]))
        else:
            return []
    return _balanced(yes, no, cfg.cases_per_label, rng)


def sentiment_cases(rm_rows: list[dict], cfg: ValidationConfig, rng: random.Random) -> list[dict]:
    """IMDB review prefixes with their labels (the reward model's data): positive = Yes."""
    yes = [_case("", r["text"], 1, "positive review", r["id"]) for r in rm_rows if int(r["label"]) == 1]
    no = [_case("", r["text"], 0, "negative review", r["id"]) for r in rm_rows if int(r["label"]) == 0]
    return _balanced(yes, no, cfg.cases_per_label, rng)


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


def summarise_question(question: str, cases: list[dict], soft: np.ndarray, min_auc: float,
                       variant: str = "configured") -> dict:
    """One row of the validation table from the cases' soft scores."""
    if not cases:
        nan = float("nan")
        return {"question": question, "variant": variant, "cases_val": 0, "cases_test": 0, "auc_val": nan, "auc_test": nan,
                "accuracy_argmax_test": nan, "yes_rate_argmax_test": nan, "threshold": nan,
                "accuracy_calibrated_test": nan, "informative": False}
    s, y = np.asarray(soft, float), np.array([c["label"] for c in cases])
    val, test = (np.array([c["split"] == k for c in cases]) for k in ("val", "test"))
    threshold = best_threshold(s[val], y[val]) if val.any() else float("nan")
    test_auc = auc(s[test], y[test])
    return {"question": question, "variant": variant, "cases_val": int(val.sum()), "cases_test": int(test.sum()),
            "auc_val": auc(s[val], y[val]), "auc_test": test_auc,
            "accuracy_argmax_test": float(np.mean((s[test] > 0.5) == y[test])),
            "yes_rate_argmax_test": float(np.mean(s[test] > 0.5)),
            "threshold": threshold,
            "accuracy_calibrated_test": float(np.mean((s[test] > threshold) == y[test])),
            "informative": bool(test_auc >= min_auc)}


def informative_questions(judge: dict, validation: list[dict], where: str) -> dict:
    """The judge's settings (config `evaluate.judge`) with only the questions its validation table
    (rows of `results/judge/<task>.csv`, read from `where`) found informative in their configured
    wording: every table leaves the others out, so with `informative_only` they are not asked."""
    configured = {r["question"]: str(r["informative"]).lower() == "true" for r in validation
                  if not isinstance(r.get("variant"), str) or r["variant"] == "configured"}
    missing = set(judge.get("questions", {})) - set(configured)
    if missing:
        raise InputError(f"{where}: no validation of the judge question(s) {sorted(missing)}; rerun validate_judge")
    return {**judge, "questions": {q: w for q, w in judge["questions"].items() if configured[q]}}
