"""LLM judge (Yes/No read from next-token logits), Δ_demo and MAUVE on local features."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rcfd.evaluate import judge as J
from rcfd.evaluate.metrics import MauveConfig, mauve_score, sentence_features
from rcfd.report.tables import TABLES, build_table
from rcfd.utils import InputError

QUESTIONS = {"success": "Review: {text}\nIs this review positive?",
             "naturalness": "A review written by a human: {example}\nAnother review: {text}\nHuman-written?"}
EXAMPLE = {"prompt": "The cast was", "demo": " wonderful and warm."}


@pytest.fixture(scope="module")
def judge(tiny_models):
    """The judge in fp32 (cpu_bf16 off; the default is on): its scores compare with a plain forward."""
    return J.Judge(tiny_models["llama"], J.JudgeConfig(questions=QUESTIONS, batch_size=3, device="cpu", cpu_bf16=False))


def test_answer_ids_are_first_tokens_without_shared_ones(judge):
    tok = judge.tok
    assert judge.yes and judge.no and not set(judge.yes) & set(judge.no)
    firsts = {tok.encode(w, add_special_tokens=False)[0] for w in ("Yes", " Yes")}
    assert set(judge.yes) <= firsts
    with pytest.raises(InputError, match="share"):
        J.answer_ids(tok, ["Yes"], ["Yes"])


def test_soft_score_is_the_yes_no_share_of_the_next_token_probabilities(judge):
    """Batched, left-padded scoring equals a hand computation from one unpadded forward pass."""
    messages = ["Is it good?", "A much longer question about a film that was dull and long, is it good?",
                "Yes or no?", "The score kept me awake. Positive?"]
    soft = judge.soft_scores(messages)
    assert soft.shape == (4,)
    for m, s in zip(messages, soft):
        ids = judge.tok(J.chat_prompt(judge.tok, m), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            probs = judge.model(input_ids=ids).logits[0, -1].float().softmax(-1)
        p_yes, p_no = probs[judge.yes].sum().item(), probs[judge.no].sum().item()
        assert s == pytest.approx(p_yes / (p_yes + p_no), abs=1e-5)
    row = J.summarise({"success": soft})
    assert row["judge_success"] == pytest.approx(np.mean(soft > 0.5))  # Yes when P(Yes) > P(No)
    assert row["judge_success_soft"] == pytest.approx(soft.mean())



def test_judge_cpu_bf16_runs_under_autocast_and_stays_close(tiny_models, judge):
    """JudgeConfig.cpu_bf16 (the evaluation's cpu_bf16): the forward under bf16 autocast, soft scores
    within bf16 rounding of the fp32 judge's."""
    bf16 = J.Judge(tiny_models["llama"], J.JudgeConfig(questions=QUESTIONS, batch_size=3, device="cpu", cpu_bf16=True))
    seen = []
    bf16.model.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))  # returns None
    messages = ["Is it good?", "A much longer question about a film that was dull and long, is it good?"]
    got = bf16.soft_scores(messages)
    assert seen == [True]
    np.testing.assert_allclose(got, judge.soft_scores(messages), atol=0.02)

def test_the_questions_shared_beginning_runs_once_and_changes_no_score(tiny_models, judge):
    """share_prefix: a 1-shot question's instructions and example, the same for every sample, run once
    per batch (their keys and values copied to each row), each row then runs only its own tokens; the
    scores are the unshared judge's (same ids, same positions), also for a last batch of one row."""
    samples = [{"prompt": "The film", "completion": " was a delight from start to end."},
               {"prompt": "I hated", "completion": " every minute."},
               {"prompt": "Acting", "completion": " fine, plot thin, music loud and long."},
               {"prompt": "Go", "completion": " see it."}]
    messages = [J.fill(QUESTIONS["naturalness"], s, EXAMPLE, judge.cut) for s in samples]
    rows = judge.tok([J.chat_prompt(judge.tok, m) for m in messages])["input_ids"]
    prefix = J.shared_prefix(rows)
    assert len(prefix) >= 8 and all(r[:len(prefix)] == prefix for r in rows)
    widths = []
    hook = judge.model.register_forward_pre_hook(lambda _, args, kw: widths.append(kw["input_ids"].shape[1]),
                                                 with_kwargs=True)
    try:
        shared = judge.soft_scores(messages)  # batches of 3 and 1
    finally:
        hook.remove()
    whole = J.Judge(tiny_models["llama"], J.JudgeConfig(questions=QUESTIONS, batch_size=3, device="cpu", cpu_bf16=False,
                                                        share_prefix=False)).soft_scores(messages)
    np.testing.assert_allclose(shared, whole, atol=1e-5)
    # the first batch: the prefix once, then the rows' own tokens only; the single last row whole
    assert widths == [len(prefix), max(len(r) for r in rows[:3]) - len(prefix), len(rows[3])]
    assert J.shared_prefix([rows[0]]) == [] and J.shared_prefix([[1, 2, 3], [1, 2, 4]]) == []  # nothing worth it


def test_one_shot_question_shows_the_example(judge):
    sample = {"prompt": "This film", "completion": " was a mess."}
    msg = J.fill(QUESTIONS["naturalness"], sample, EXAMPLE, judge.cut)
    assert "The cast was wonderful and warm." in msg and "This film was a mess." in msg
    assert J.chat_prompt(judge.tok, msg).endswith("Answer:")  # no chat template: plain text
    scores = J.judge_samples(judge, [sample] * 2, EXAMPLE)
    assert set(scores) == {"success", "naturalness"} and len(scores["naturalness"]) == 2


def test_chat_template_wraps_the_question(judge):
    tok = judge.tok
    tok.chat_template = "{% for m in messages %}<u>{{ m['content'] }}</u>{% endfor %}<a>"
    try:
        assert J.chat_prompt(tok, "Q?") == "<u>Q?</u><a>"
    finally:
        tok.chat_template = None


def test_fields_are_cut_and_unknown_fields_rejected(tiny_models):
    cut = J.Judge(tiny_models["llama"], J.JudgeConfig(max_field_tokens=3, device="cpu")).cut
    assert len(cut("the cast kept me smiling and awake")) < len("the cast kept me smiling and awake")
    with pytest.raises(InputError, match="reviewer"):
        J.JudgeConfig(questions={"x": "{reviewer} said {text}"})


def test_judged_samples_take_every_prompts_first_sample_first():
    samples = [{"sample": s} for _ in range(3) for s in (0, 1)]  # prompts a, b, c with 2 samples each
    assert J.judged_indices(samples, 3) == [0, 2, 4]
    assert J.judged_indices(samples, None) == list(range(6))


def test_delta_demo_by_hand():
    cols = ["judge_success", "judge_naturalness"]
    assert J.question_columns(["judge_success", "judge_success_soft", "judge_naturalness", "mauve", "judge_model",
                               "judge_success_judged"]) == cols
    model, demos = {"judge_success": 0.9, "judge_naturalness": 0.2}, {"judge_success": 0.7, "judge_naturalness": 0.6}
    assert J.delta_demo(model, demos, cols) == pytest.approx(0.2 + 0.4)
    assert math.isnan(J.delta_demo({"judge_success": 0.9}, demos, cols))


def _metrics(judge_cols=True):
    rows = []
    for method, succ, nat in [("demonstrations", 0.7, 0.6), ("base", 0.5, 0.5), ("beta0", 1.0, 0.0), ("rcfd", 0.75, 0.6)]:
        for seed in ((0,) if method == "demonstrations" else (0, 1)):
            row = {"task": "movies", "method": method, "seed": seed, "alignment": 0.1, "avg_reward": 1.0,
                   "mean_tokens": 10, "success_vader": 0.9, "loglik_base": -3.0, "distinct_2": 0.5, "self_bleu": 5.0,
                   "n": 20, "empty_share": 0.0}
            if judge_cols:
                row.update(judge_success=succ + 0.1 * seed, judge_naturalness=nat,
                           mauve=math.nan if method == "demonstrations" else 0.5)
            rows.append(row)
    return pd.DataFrame(rows)


def test_table_gets_delta_demo_per_run_then_the_seed_mean():
    table = build_table(_metrics(), TABLES["table6"], {"judge": "weak 135M judge"})
    delta = dict(zip(table["method"], table["Δ_demo ↓ (weak 135M judge)"]))
    # beta0: seed 0 |1.0-0.7| + |0-0.6| = 0.9, seed 1 |1.1-0.7| + 0.6 = 1.0
    assert delta["R β=0"] == pytest.approx(0.95)
    assert delta["RCfD"] == pytest.approx((0.05 + 0.15) / 2)
    assert math.isnan(delta["demonstrations"])
    assert "success (weak 135M judge)" in table.columns and "MAUVE (features)" in table.columns


def test_runs_without_judge_or_mauve_leave_those_columns_out_or_empty():
    table = build_table(_metrics(judge_cols=False), TABLES["table6"])
    assert not any("judge" in c or "MAUVE" in c for c in table.columns)
    mixed = pd.concat([_metrics()[lambda d: d.method != "rcfd"], _metrics(False)[lambda d: d.method == "rcfd"]])
    table = build_table(mixed, TABLES["table6"])
    rcfd = table[table.method == "RCfD"].iloc[0]
    assert math.isnan(rcfd["success (LLM judge)"]) and math.isnan(rcfd["Δ_demo ↓ (LLM judge)"])


def test_mauve_on_synthetic_features():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    far = rng.normal(size=(300, 16)) + np.r_[8.0, np.zeros(15)]
    cfg = MauveConfig(num_buckets=8, kmeans_num_redo=2)
    same = mauve_score(a, b, cfg)
    assert same > 0.9
    assert mauve_score(a, far, cfg) < 0.1
    np.random.seed(123)  # its k-means is seeded by cfg, not by the global random state
    assert mauve_score(a, b, cfg) == same


def test_sentence_features_ignore_padding(tiny_models):
    texts = ["a short one", "a much longer review of a quiet film with a moving score"]
    both = sentence_features(tiny_models["bert"], texts, batch_size=2)
    alone = sentence_features(tiny_models["bert"], texts[:1], batch_size=1)
    assert both.shape[0] == 2 and np.allclose(both[0], alone[0], atol=1e-5)
