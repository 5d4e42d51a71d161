"""Judge validation: labelled cases per question, AUC, calibrated threshold, and the tables that
leave out what the judge cannot tell apart (issue 20)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from rcfd.evaluate import judge_validation as V
from rcfd.report.tables import TABLES, apply_judge_validation, build_table

from .conftest import CORPUS


def test_auc_equals_an_independent_computation_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(60), 1)  # many ties
    labels = rng.random(60) < 0.5
    assert V.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    # by hand on four cases: pairs (yes, no) = (0.9 > 0.1), (0.9 > 0.5), (0.5 = 0.5: a half), (0.5 > 0.1)
    assert V.auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(3.5 / 4)
    assert np.isnan(V.auc([0.2, 0.3], [1, 1]))


def test_the_threshold_is_calibrated_where_the_argmax_is_degenerate():
    """A judge that says No to everything (all soft scores < 0.5) but ranks well: the argmax has
    accuracy 0.5, the calibrated threshold separates the labels."""
    soft = np.array([0.30, 0.32, 0.35, 0.10, 0.12, 0.15])
    labels = np.array([1, 1, 1, 0, 0, 0])
    t = V.best_threshold(soft, labels)
    assert 0.15 < t < 0.30
    assert V.balanced_accuracy(soft, labels, t) == 1.0 and V.balanced_accuracy(soft, labels, 0.5) == 0.5


def _rows(n=24):
    text = [" ".join(CORPUS[i:i + 2]) for i in range(0, 2 * n, 2)]
    return [{"id": f"r{i // 2}-{'challenge' if i % 2 else 'outcome'}", "split": "eval",  # two aspects a paper
             "prompt": f"Summarize the challenge of this paper in one sentence.\n\n{CORPUS[i]} {CORPUS[i + 1]}"
                       "\n\nSummary:", "demo": " " + t} for i, t in enumerate(text)]


@pytest.mark.parametrize("task,question", [("movies", "naturalness"), ("wiki", "naturalness"),
                                           ("summaries", "success"), ("summaries", "factuality"),
                                           ("summaries", "naturalness"), ("summaries", "verbosity")])
def test_labelled_cases_are_balanced_split_and_labelled_as_their_kind(task, question):
    cfg = V.ValidationConfig(cases_per_label=8)
    cases = V.labelled_cases(task, question, _rows(), None, cfg)
    labels = [c["label"] for c in cases]
    assert labels.count(1) == labels.count(0) == 8
    for split in ("val", "test"):  # each label half in each split
        assert sorted(c["label"] for c in cases if c["split"] == split) == [0] * 4 + [1] * 4
    human = {r["id"]: r["demo"] for r in _rows()}
    paper = {r["id"]: r["id"].split("-")[0] for r in _rows()}
    for label in (0, 1):  # a label with a hard family draws half its cases from it
        hard = [c["hard"] for c in cases if c["label"] == label]
        assert sum(hard) in (0, 4)
    assert any(c["hard"] for c in cases)
    for c in cases:
        assert c["hard"] == (c["kind"] in ("spliced", "another aspect of the same paper", "half another paper's summary",
                                           "padded with another aspect"))
        first_half = human[c["source"]].split()[: len(human[c["source"]].split()) // 2]
        if c["kind"] in ("human", "reference"):
            assert c["completion"] == human[c["source"]]
        elif c["kind"] == "shuffled words":
            assert sorted(c["completion"].split()) == sorted(human[c["source"]].split())
            assert c["completion"].split() != human[c["source"]].split()
        elif c["kind"] == "another paper's summary":
            assert c["completion"] != human[c["source"]] and c["completion"] in human.values()
        elif c["kind"] == "padded with the document":
            assert c["completion"].startswith(human[c["source"]]) and len(c["completion"]) > len(human[c["source"]])
        elif c["kind"] in ("spliced", "half another paper's summary"):  # this text's first half, another's second
            words = c["completion"].split()
            assert words[: len(first_half)] == first_half and words != human[c["source"]].split()
            assert any(" ".join(words[len(first_half):]) in human[o] for o in human if o != c["source"])
        elif c["kind"] == "another aspect of the same paper":
            assert [o for o in human if human[o] == c["completion"] and o != c["source"]
                    and paper[o] == paper[c["source"]]]
        elif c["kind"] == "padded with another aspect":
            rest = c["completion"][len(human[c["source"]]):].strip()
            assert c["completion"].startswith(human[c["source"]])
            assert [o for o in human if human[o].strip() == rest and paper[o] == paper[c["source"]]]
    assert cases == V.labelled_cases(task, question, _rows(), None, cfg)  # seeded


def test_sentiment_cases_use_the_review_labels():
    rm_rows = [{"id": f"i{k}", "text": f"review {k} " + "word " * 30, "label": k % 2} for k in range(30)]
    cases = V.labelled_cases("movies", "success", _rows(), rm_rows, V.ValidationConfig(cases_per_label=6))
    assert len(cases) == 12 and all(c["label"] == int(c["completion"].split()[1]) % 2 for c in cases)
    for label in (0, 1):  # half of each label: the review's first 20 words (the hard family)
        lengths = sorted(len(c["completion"].split()) for c in cases if c["label"] == label)
        assert lengths == [20] * 3 + [32] * 3
    assert all(c["hard"] == (len(c["completion"].split()) == 20) for c in cases)
    assert V.labelled_cases("wiki", "success", _rows(), None, V.ValidationConfig()) == []  # no labelled data


def test_corruptions():
    import random

    rng = random.Random(0)
    text = "One sentence here. Another one there! A third?"
    shuffled = V.corrupted(text, "shuffled sentences", rng, 6)
    assert shuffled != text and sorted(shuffled.split()) == sorted(text.split())
    assert V.corrupted("Only one sentence", "shuffled sentences", rng, 6) is None
    assert V.corrupted("a b c d e f g h", "loop", rng, 3) == "a b c a b c a b"


def test_spliced():
    assert V.spliced("a b c d e f", "u v w x y z") == "a b c x y z"
    assert V.spliced("a b c", "u v w x") is None  # too short to splice
    assert V.spliced("a b c d", "x y c d") is None  # the same text


def test_hard_auc_compares_against_the_hard_family_only():
    soft = np.array([0.9, 0.8, 0.1, 0.2, 0.85])
    labels = np.array([1, 1, 0, 0, 0])
    hard = np.array([False, False, False, False, True])
    # Yes (0.9, 0.8) vs the hard No (0.85) only: 1 of 2 pairs
    assert V.hard_auc(soft, labels, hard) == pytest.approx(0.5)
    assert V.auc(soft, labels) == pytest.approx(5 / 6)
    assert np.isnan(V.hard_auc(soft, labels, np.zeros(5, bool)))


def _validated(cases, soft_by_variant):
    rows = [V.summarise_question("naturalness", cases, soft, variant) for variant, soft in soft_by_variant.items()]
    return V.select_wording(rows, 0.7)


def test_the_wording_is_chosen_on_the_val_half_and_never_reads_the_test_half():
    cases = V.labelled_cases("wiki", "naturalness", _rows(40), None, V.ValidationConfig(cases_per_label=16))
    y = np.array([c["label"] for c in cases], float)
    test = np.array([c["split"] == "test" for c in cases])
    rng = np.random.default_rng(0)
    # zero_shot separates the val half better; the configured wording separates the test half better
    soft = {"configured": np.where(test, y * 0.8 + 0.1, rng.random(len(y))),
            "zero_shot": np.where(test, rng.random(len(y)), y * 0.6 + 0.2)}
    rows = _validated(cases, soft)
    chosen = [r for r in rows if r["selected"]]
    assert [r["variant"] for r in chosen] == ["zero_shot"] and sum(r["informative"] for r in rows) <= 1
    # any test-half scores: the same choice, thresholds and val AUCs; only the reported test numbers move
    for _ in range(5):
        other = {v: np.where(test, rng.random(len(y)), s) for v, s in soft.items()}
        again = _validated(cases, other)
        for a, b in zip(rows, again):
            assert (a["selected"], a["threshold"], a["auc_val"]) == (b["selected"], b["threshold"], b["auc_val"])
    # ties go to the configured wording; a question without cases keeps its configured row
    tie = V.select_wording([dict(rows[1], variant="zero_shot"), dict(rows[1], variant="configured")], 0.7)
    assert [r["variant"] for r in tie if r["selected"]] == ["configured"]
    empty = V.select_wording([V.summarise_question("success", [], [])], 0.7)
    assert empty[0]["selected"] and not empty[0]["informative"]


def _validation(informative_success: bool):
    return pd.DataFrame([{"question": "success", "variant": "configured", "auc_test": 0.8 if informative_success
                          else 0.55, "threshold": 0.3, "selected": True, "informative": informative_success},
                         {"question": "naturalness", "variant": "configured", "auc_test": 0.52, "threshold": 0.4,
                          "selected": True, "informative": False},
                         # another wording that would pass on the test half, not chosen on the val half: not used
                         {"question": "naturalness", "variant": "zero_shot", "auc_test": 0.9, "threshold": 0.4,
                          "selected": False, "informative": False}])


def test_tables_keep_informative_questions_with_the_calibrated_threshold_and_drop_the_rest():
    required = {c: 0.5 for c in TABLES["table6"].columns if c not in TABLES["table6"].optional}
    metrics = pd.DataFrame([{"task": "movies", "method": m, "seed": 0, **required,
                             "judge_success": 0.0, "judge_naturalness": 0.0, "judge_naturalness_soft": 0.3}
                            for m in ("rcfd", "demonstrations")])
    scored = pd.DataFrame([{"method": "rcfd", "seed": 0, "judge_success": s, "judge_naturalness": 0.9}
                           for s in (0.1, 0.35, 0.4, 0.2)]
                          + [{"method": "demonstrations", "seed": 0, "judge_success": s, "judge_naturalness": 0.1}
                             for s in (0.31, 0.5)] + [{"method": "rcfd", "seed": 0}])  # a sample not judged
    out, suffixes, note = apply_judge_validation(metrics, scored, _validation(True))
    # by hand: rcfd 2 of 4 judged samples above 0.3, the demonstrations 2 of 2
    assert out.set_index("method")["judge_success"].to_dict() == {"rcfd": 0.5, "demonstrations": 1.0}
    assert "judge_naturalness" not in out and "judge_naturalness_soft" not in out
    assert suffixes == {"judge_success": "AUC 0.80"} and "naturalness (AUC 0.520)" in note
    table = build_table(out, TABLES["table6"], {"judge": "tiny judge"}, suffixes)
    assert "success (tiny judge, AUC 0.80)" in table.columns
    assert not any(c.startswith("naturalness (tiny") for c in table.columns)
    # Δ_demo over the kept question only: |0.5 - 1.0|
    assert table.set_index("method")["Δ_demo ↓ (tiny judge)"]["RCfD"] == pytest.approx(0.5)
    none_kept = build_table(*apply_judge_validation(metrics, scored, _validation(False))[:1], TABLES["table6"])
    assert not any("success (" in c and "VADER" not in c for c in none_kept.columns)
    assert not any(c.startswith("Δ_demo") for c in none_kept.columns)


def test_validate_judge_step_on_a_tiny_judge(tiny_models, tmp_path):
    """The CLI step end to end: a table row per question, cases written with their soft scores."""
    from rcfd.cli import main

    rows = [dict(r, split="train" if i < 4 else "eval") for i, r in enumerate(_rows(40))]
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    params = {"task": "summaries", "device": "cpu",
              "judge": {"model": "policy", "label": "tiny", "batch_size": 8,
                        "validation": {"cases_per_label": 6, "variants": {"verbosity": {"plain": "{completion}?"}}},
                        "questions": {"verbosity": "Summary: {completion}\nVerbose?",
                                      "naturalness": "Human: {example_completion}\nOther: {completion}\nHuman?",
                                      "other": "{text}?"}}}
    assert main(["validate_judge", "--params", json.dumps(params), "--judge", tiny_models["llama"],
                 "--data", str(data), "--cases", str(tmp_path / "cases.jsonl"), "--out", str(tmp_path / "v")]) == 0
    table = pd.read_csv(tmp_path / "v.csv")
    assert list(zip(table["question"], table["variant"])) == [("verbosity", "configured"), ("verbosity", "plain"),
                                                              ("naturalness", "configured"), ("other", "configured")]
    table = table[table["variant"] == "configured"].set_index("question")
    assert table.loc["verbosity", "cases_test"] == 6 and 0 <= table.loc["verbosity", "auc_test"] <= 1
    assert not table.loc["other", "informative"] and table.loc["other", "cases_test"] == 0  # no labelled data
    cases = [json.loads(line) for line in (tmp_path / "cases.jsonl").read_text().splitlines()]
    assert len(cases) == 36 and all(0 < c["soft"] < 1 for c in cases)
    assert rows[0]["id"] not in {c["source"] for c in cases}  # the 1-shot example is not a case


def test_informative_questions_keep_the_validated_ones_only():
    import pandas as pd

    from rcfd.evaluate.judge_validation import informative_questions
    from rcfd.report.tables import apply_judge_validation
    from rcfd.utils import InputError

    judge = {"label": "weak", "questions": {"success": "{text}?", "naturalness": "{text}!"},
             "validation": {"variants": {"naturalness": {"zero_shot": "{completion}!"}}}}
    validation = [{"question": "success", "variant": "configured", "selected": True, "informative": True,
                   "auc_test": 0.7, "threshold": 0.5},
                  {"question": "naturalness", "variant": "configured", "selected": True, "informative": False,
                   "auc_test": 0.6, "threshold": 0.5},
                  {"question": "naturalness", "variant": "zero_shot", "selected": False, "informative": False,
                   "auc_test": 0.8, "threshold": 0.5}]
    assert informative_questions(judge, validation, "v.csv")["questions"] == {"success": "{text}?"}
    # the val half chose the zero-shot wording: it is the one asked
    chosen = [dict(r, selected=r["variant"] != "configured" or r["question"] == "success", informative=True)
              for r in validation]
    assert informative_questions(judge, chosen, "v.csv")["questions"] == {"success": "{text}?",
                                                                         "naturalness": "{completion}!"}
    with pytest.raises(InputError, match="v.csv: no validation of the judge question\\(s\\) \\['naturalness'\\]"):
        informative_questions(judge, validation[:1], "v.csv")
    # a question that was not asked is still named as left out in the table's caption
    metrics = pd.DataFrame({"method": ["base"], "seed": [0], "judge_success": [0.4], "judge_success_soft": [0.4]})
    scored = pd.DataFrame({"method": ["base", "base"], "seed": [0, 0], "judge_success": [0.2, 0.9]})
    out, suffixes, note = apply_judge_validation(metrics, scored, pd.DataFrame(validation))
    assert out["judge_success"].tolist() == [0.5] and "naturalness (AUC 0.600)" in note


def test_runs_judged_by_another_judge_are_never_scored_with_this_validation():
    """A validation names its judge (judge_model); a run evaluated by another judge (or before runs
    recorded theirs) gets no value from it, and a question no run of that judge answered is left out."""
    validation = pd.DataFrame([{"question": "success", "variant": "configured", "selected": True, "informative": True,
                                "auc_test": 0.9, "threshold": 0.5, "judge_model": "qwen"}])
    scored = pd.DataFrame({"method": ["rcfd", "rcfd", "base", "base"], "seed": [0] * 4,
                           "judge_success": [0.9, 0.1, 0.9, 0.9]})
    metrics = pd.DataFrame({"method": ["rcfd", "base"], "seed": [0, 0], "judge_success": [0.5, 1.0],
                            "judge_model": ["qwen", "smollm"]})
    out, suffixes, note = apply_judge_validation(metrics, scored, validation)
    assert out["judge_success"].tolist()[0] == 0.5 and np.isnan(out["judge_success"].tolist()[1])
    assert out["judge_success_judged"].tolist() == [2, 0] and "evaluation predates it): success" in note
    older = apply_judge_validation(metrics.drop(columns="judge_model"), scored, validation)[0]
    assert "judge_success" not in older  # runs that name no judge: left out
