import math

import numpy as np
import pytest
import torch

from rcfd.rewards import ClassifierReward, RewardModelConfig, kl_regularised_reward, make_reward_func, rcfd_reward

from .conftest import CORPUS


def test_rcfd_reward_is_minus_squared_distance_to_the_demo():
    assert rcfd_reward(2.0, 2.0) == 0.0
    assert rcfd_reward(3.0, 1.0) == -4.0
    assert rcfd_reward(-1.0, 1.0) == -4.0  # symmetric: below the demo is penalised like above
    r = rcfd_reward(torch.tensor([0.0, 1.0, 2.5]), torch.tensor([1.0, 1.0, 1.0]))
    assert torch.allclose(r, torch.tensor([-1.0, 0.0, -2.25]))


def test_rcfd_reward_peaks_at_the_demo_reward():
    rewards = torch.linspace(-3, 3, 61)
    assert rewards[rcfd_reward(rewards, 0.7).argmax()].item() == pytest.approx(0.7, abs=0.06)


def test_kl_regularised_reward():
    # R_beta = R - beta * (log pi - log pi_0)
    assert kl_regularised_reward(2.0, -3.0, -5.0, 0.1) == pytest.approx(2.0 - 0.1 * 2.0)
    assert kl_regularised_reward(2.0, -3.0, -5.0, 0.0) == 2.0  # beta = 0 is plain maximisation
    # a policy less likely than the reference gains reward (negative KL estimate on that sample)
    assert kl_regularised_reward(1.0, -6.0, -5.0, 0.5) == pytest.approx(1.5)


def test_classifier_reward_is_the_positive_logit(tiny_models):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["This quiet film was wonderful", "That loud film was a mess and the cast kept me bored."]
    rm = ClassifierReward(tiny_models["bert"], RewardModelConfig(batch_size=1), "cpu")
    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"]).eval()
    with torch.no_grad():
        expected = [model(**tok(t, return_tensors="pt")).logits[0, 1].item() for t in texts]
    # the text scored is prompt + completion, however it is split
    assert rm.score([t[:9] for t in texts], [t[9:] for t in texts]) == pytest.approx(expected, abs=1e-5)


def test_reward_funcs_for_trl(tiny_models):
    rm = ClassifierReward(tiny_models["bert"], RewardModelConfig(), "cpu")
    prompts, completions = ["This quiet film", "Her new film"], [" was dull.", " was moving."]
    raw = rm.score(prompts, completions)
    plain = make_reward_func("reward", rm)
    assert plain.__name__ == "reward_reward"
    assert plain(prompts=prompts, completions=completions, completion_ids=None) == pytest.approx(raw, abs=1e-6)
    calibrated = make_reward_func("rcfd", rm)
    demo = [raw[0], raw[1] + 2.0]
    got = calibrated(prompts=prompts, completions=completions, demo_reward=demo, trainer_state=None)
    assert got == pytest.approx([0.0, -4.0], abs=1e-5)
    with pytest.raises(ValueError, match="demo_reward"):
        calibrated(prompts=prompts, completions=completions)
    assert all(math.isfinite(x) for x in got)


def test_loglikelihood_matches_a_hand_computation(tiny_models):
    from transformers import AutoModelForCausalLM

    from rcfd.models import load_tokenizer
    from rcfd.rewards import LogLikelihood

    tok = load_tokenizer(tiny_models["llama"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"]).eval()
    prompts, conts = ["This quiet film", "The"], [" was wonderful.", " cast kept me awake and smiling."]
    expected = []
    for x, y in zip(prompts, conts):
        px, py = tok(x, add_special_tokens=False)["input_ids"], tok(y, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([px + py])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0], -1)
        expected.append(sum(logp[len(px) + i - 1, t].item() for i, t in enumerate(py)) / len(py))
    got = LogLikelihood(tiny_models["llama"], batch_size=2, cpu_bf16=False).score(prompts, conts)  # padded == alone
    assert got == pytest.approx(expected, abs=1e-4)



def test_loglikelihood_cpu_bf16_runs_under_autocast_and_stays_close(tiny_models):
    """`<task>.evaluate.cpu_bf16`: the scoring forward runs under bf16 autocast (fp32 without it) and
    the log-likelihoods stay within bf16 rounding of the fp32 ones."""
    from rcfd.rewards import LogLikelihood

    prompts, conts = ["This quiet film", "The"], [" was wonderful.", " cast kept me awake and smiling."]
    scores, seen = {}, []
    for bf16 in (False, True):
        ll = LogLikelihood(tiny_models["llama"], batch_size=2, cpu_bf16=bf16)
        ll.model.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))  # returns None
        scores[bf16] = ll.score(prompts, conts)
    assert seen == [False, True]
    assert scores[True] == pytest.approx(scores[False], abs=0.05) and scores[True] != scores[False]

def test_loglik_reward_for_trl(tiny_models):
    """Use case 1: the RCfD reward on the log-likelihood; an empty completion gets the batch's worst."""
    from rcfd.rewards import LogLikelihood

    ll = LogLikelihood(tiny_models["llama"], batch_size=4)
    prompts, completions = ["This quiet film", "Her new film", "The cast"], [" was dull.", " was moving.", ""]
    raw = ll.score(prompts, completions)
    assert math.isnan(raw[2]) and raw[:2] == pytest.approx([sum(t) / len(t) for t in ll.token_logprobs(
        prompts[:2], completions[:2])])
    demo = [raw[0] + 1.0, raw[1], -3.0]
    got = make_reward_func("rcfd", ll)(prompts=prompts, completions=completions, demo_reward=demo)
    assert got == pytest.approx([-1.0, 0.0, -1.0], abs=1e-5)
    plain = make_reward_func("reward", ll)(prompts=prompts, completions=completions)
    assert plain[:2] == pytest.approx(raw[:2], abs=1e-6) and plain[2] == pytest.approx(min(raw[:2]), abs=1e-6)


def test_length_reward_and_two_reward_rcfd_by_hand():
    from rcfd.rewards import length_reward, rcfd_multi_reward, whiten

    assert length_reward(torch.tensor([3.0, 10.0])).tolist() == [-3.0, -10.0]
    w = whiten(torch.tensor([1.0, 2.0, 3.0]))
    assert w.tolist() == pytest.approx([-1.0, 0.0, 1.0])  # std is the unbiased batch std (1.0)
    rm, rm_demo = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 1.0, 1.0])
    n, n_demo = torch.tensor([10.0, 30.0, 20.0]), torch.tensor([20.0, 20.0, 20.0])
    got = rcfd_multi_reward([rm, -n], [rm_demo, -n_demo])
    # independently: each calibrated reward -(r - r_demo)^2, whitened with numpy (unbiased std), summed
    calibrated = [np.array([0.0, -1.0, -9.0]), np.array([-100.0, -100.0, 0.0])]
    expected = sum((c - c.mean()) / c.std(ddof=1) for c in calibrated)
    assert np.allclose(got.numpy(), expected, atol=1e-6)
    # each reward counts the same whatever its scale: multiplying lengths by 10 changes nothing
    assert torch.allclose(rcfd_multi_reward([rm, -10 * n], [rm_demo, -10 * n_demo]), got, atol=1e-5)


def test_preference_reward_funcs(tiny_models):
    rm = ClassifierReward(tiny_models["bert"], RewardModelConfig(positive_label=0, pair_input=True), "cpu")
    prompts, completions = ["Summarize: the cast was loud.", "Summarize: a quiet film."], [" Loud cast.", " Quiet."]
    scores = rm.score(prompts, completions)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"]).eval()
    with torch.no_grad():
        expected = [model(**tok(p, c, return_tensors="pt")).logits[0, 0].item() for p, c in zip(prompts, completions)]
    assert scores == pytest.approx(expected, abs=1e-5)  # the pair (x, y), not x + y
    ids = [[5, 6, 7], [5]]
    penalised = make_reward_func("reward", rm, alpha=0.5)(prompts=prompts, completions=completions, completion_ids=ids)
    assert penalised == pytest.approx([scores[0] - 1.5, scores[1] - 0.5], abs=1e-5)
    two = make_reward_func("rcfd2", rm)(prompts=prompts, completions=completions, completion_ids=ids,
                                        demo_reward=scores, demo_tokens=[3, 3])
    assert two == pytest.approx([1.0 / 2 ** 0.5, -1.0 / 2 ** 0.5], abs=1e-4)  # R_RM term is constant -> 0
    with pytest.raises(ValueError, match="demo_tokens"):
        make_reward_func("rcfd2", rm)(prompts=prompts, completions=completions, completion_ids=ids, demo_reward=scores)


def test_alpha_in_the_reward_models_units():
    """alpha_unit demo_sd: alpha = k * sd(R_RM) / sd(length) of the demonstrations (sample sds);
    per_token is the paper's alpha as it is."""
    from rcfd.rewards import alpha_per_token
    from rcfd.utils import InputError

    demos = [{"demo_reward": r, "demo_tokens": n} for r, n in [(1.0, 20), (2.0, 30), (3.0, 40)]]
    assert alpha_per_token(0.5, "demo_sd", demos) == pytest.approx(0.5 * 1.0 / 10.0)  # sds 1 and 10
    assert alpha_per_token(0.005, "per_token", demos) == 0.005 and alpha_per_token(0.0, "demo_sd", demos) == 0.0
    with pytest.raises(InputError, match="'alpha_unit' 'per_word'"):
        alpha_per_token(0.5, "per_word", demos)
    with pytest.raises(InputError, match="no spread"):
        alpha_per_token(0.5, "demo_sd", [dict(d, demo_tokens=30) for d in demos])


def test_pair_truncation_cuts_the_document_never_the_summary(tiny_models):
    """A (document, summary) pair longer than max_length loses the end of its document only, row by
    row: a summary's score does not change however long its document is beyond the cut, and its
    tokens are all in the encoder's input; a short row in the same batch is not cut at all."""
    from rcfd.rewards import MIN_DOCUMENT_TOKENS, encode

    cfg = RewardModelConfig(positive_label=0, pair_input=True, max_length=128)
    rm = ClassifierReward(tiny_models["bert"], cfg, "cpu")
    doc = "Summarize: " + " ".join(["the cast was loud and the film was long"] * 20)
    summaries = [" Loud cast.", " A long film with a loud cast that the critics found far too long."]
    scores = rm.score([doc] * 2, summaries)
    assert rm.score([doc + " and more text after the cut"] * 2, summaries) == pytest.approx(scores, abs=1e-6)
    tok = rm.tokenizer
    enc = encode(tok, [doc, "Summarize: a quiet film."], [summaries[1], summaries[0]], cfg.max_length)
    row = enc["input_ids"][0]
    assert len(row) == 128 and tok.decode(row, skip_special_tokens=True).endswith(summaries[1])  # all of it
    short = tok("Summarize: a quiet film.", summaries[0])["input_ids"]
    assert enc["input_ids"][1].tolist()[:len(short)] == short and enc["attention_mask"][1].sum() == len(short)
    # a completion too long for any document (pathological text) keeps its first tokens and the
    # document its first MIN_DOCUMENT_TOKENS
    huge = " ".join(["loud"] * 300)
    row = encode(tok, [doc], [huge], cfg.max_length)["input_ids"][0]
    doc_ids = tok(doc, add_special_tokens=False)["input_ids"]
    text = tok.decode(row, skip_special_tokens=True)
    assert len(row) == 128 and text.startswith(tok.decode(doc_ids[:MIN_DOCUMENT_TOKENS]))
    assert not text.startswith(tok.decode(doc_ids[:MIN_DOCUMENT_TOKENS + 1])) and text.endswith("loud")


def test_one_length_definition():
    """|y| = policy tokens before the first EOS, the EOS not counted: TRL's completion_ids (which
    end with the EOS when the policy stopped), the generations' completion_tokens and the
    demonstrations' demo_tokens (text, no EOS) count the same answer the same."""
    from rcfd.rewards import completion_length

    eos = 2
    assert completion_length([5, 6, 7, eos], eos) == 3  # stopped: the EOS is not a token of y
    assert completion_length([5, 6, 7], eos) == 3  # cut at the generation cap
    assert completion_length(torch.tensor([5, eos, 9, 9]), eos) == 1  # padding after the EOS
    assert completion_length([eos], eos) == 0 and completion_length([], eos) == 0

    class Constant:
        def score(self, prompts, completions):
            return [0.0] * len(prompts)

    reward = make_reward_func("reward", Constant(), alpha=1.0, eos_token_id=eos)
    assert reward(prompts=["a", "b"], completions=["x", "y"], completion_ids=[[5, 6, eos], [5, 6]]) == [-2.0, -2.0]
    two = make_reward_func("rcfd2", Constant(), eos_token_id=eos)
    got = two(prompts=["a", "b"], completions=["x", "y"], completion_ids=[[5, 6, eos], [5, 6, 7, 8]],
              demo_reward=[0.0, 0.0], demo_tokens=[2, 2])
    assert got[0] == pytest.approx(1 / 2 ** 0.5) and got[1] == pytest.approx(-1 / 2 ** 0.5)  # on target: best


def test_relu_head_is_unbounded_and_survives_a_reload(tiny_models, tmp_path):
    """BERT's classifier head (pooler dense -> tanh -> linear) bounds the logit by |W|_1 + |b|;
    the DistilBERT-style head (ReLU in place of tanh) does not, and a saved model keeps it."""
    from transformers import AutoModelForSequenceClassification

    from rcfd.rewards import set_head_activation

    texts = ["This quiet film was wonderful.", "Her new loud film was a mess.", "That long film was dull."]
    scores = {}
    for act in ("tanh", "relu"):
        model = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=2)
        set_head_activation(model, act)
        with torch.no_grad():  # a pooler with large weights: tanh saturates, ReLU keeps growing
            model.bert.pooler.dense.weight.mul_(1000.0)
            bound = model.classifier.weight.abs().sum(-1) + model.classifier.bias.abs()
        model.save_pretrained(tmp_path / act)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(tiny_models["bert"]).save_pretrained(tmp_path / act)
        scorer = ClassifierReward(str(tmp_path / act), RewardModelConfig())
        assert type(scorer.model.bert.pooler.activation).__name__ == {"tanh": "Tanh", "relu": "ReLU"}[act]
        logits = scorer.logits(texts)
        scores[act] = (logits.abs().max().item(), bound.max().item())
    assert scores["tanh"][0] <= scores["tanh"][1] + 1e-4
    assert scores["relu"][0] > 10 * scores["relu"][1]
    with pytest.raises(Exception, match="head_activation 'gelu'"):
        set_head_activation(AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"]), "gelu")


def test_empty_completion_guard(tiny_models):
    """rl.empty_completion: "score" (the paper) scores an empty answer like any other; "worst" gives
    it the batch's worst reward (two-reward RCfD preferred empty answers to capped ones)."""
    from rcfd.utils import InputError

    rm = ClassifierReward(tiny_models["bert"], RewardModelConfig(), "cpu")
    eos = 0
    prompts, completions = ["This quiet film", "Her new film", "The cast"], [" was dull.", "", " was moving."]
    ids = [[5, 6, eos], [eos], [7, 8, 9]]  # the second answer is empty: only the EOS
    raw = rm.score(prompts, completions)
    kw = dict(prompts=prompts, completions=completions, completion_ids=ids, demo_reward=[raw[1]] * 3)
    scored = make_reward_func("rcfd", rm, eos_token_id=eos)(**kw)
    assert scored[1] == pytest.approx(0.0, abs=1e-6)  # the empty answer hits the target exactly
    guarded = make_reward_func("rcfd", rm, eos_token_id=eos, empty_completion="worst")(**kw)
    assert guarded[1] == pytest.approx(min(scored), abs=1e-6) and guarded[1] < 0
    assert guarded[0] == pytest.approx(scored[0]) and guarded[2] == pytest.approx(scored[2])
    with pytest.raises(InputError, match="rl.empty_completion"):
        make_reward_func("rcfd", rm, empty_completion="drop")
    with pytest.raises(ValueError, match="completion_ids"):
        make_reward_func("reward", rm, empty_completion="worst")(prompts=prompts, completions=completions)


def test_monitors_log_the_raw_reward_and_length_of_the_scored_batch(tiny_models):
    """Every reward callable reports, through TRL's log_metric, the batch's raw R_RM and length
    (what RCfD's objective alone hides); one RM pass serves both."""
    rm = ClassifierReward(tiny_models["bert"], RewardModelConfig(), "cpu")
    calls = []
    original = rm.score
    rm.score = lambda p, c: calls.append(1) or original(p, c)
    prompts, completions = ["This quiet film", "Her new film"], [" was dull.", ""]
    ids = [[5, 6, 2], [2]]
    logged = {}
    out = make_reward_func("rcfd", rm, eos_token_id=2)(prompts=prompts, completions=completions, completion_ids=ids,
                                                        demo_reward=[0.0, 0.0], log_metric=logged.__setitem__)
    raw = original(prompts, completions)
    assert logged == pytest.approx({"monitor/reward_model": np.mean(raw), "monitor/length": 1.0, "monitor/empty": 0.5})
    assert out == pytest.approx([-r ** 2 for r in raw], abs=1e-6) and len(calls) == 1


@pytest.mark.parametrize("reward_bf16", [False, True])
def test_evaluated_loglik_reward_keeps_the_reward_precision(tiny_models, reward_bf16):
    """Use case 1 with `evaluate.cpu_bf16`: the log-likelihood that *is* the reward is scored in the
    reward's own precision (`reward_model.cpu_bf16`), as `score_demos` scores the demonstrations, so
    the demonstrations evaluated as a run get exactly their own demo_reward back and A against
    themselves is 0 (a precision change would move it), although here they come in other batches."""
    from rcfd.evaluate.run import EvalModels, demonstrations_as_run, evaluate_run
    from rcfd.rewards import load_reward_model

    prompts = ["This quiet film", "The", "Her new film", "That loud film", "A"]
    demos_text = [" was wonderful.", " cast kept me awake and smiling.", " was moving.", " was a mess.", " film."]
    rm = {"kind": "loglik", "batch_size": 3, "device": "cpu", "cpu_bf16": reward_bf16}
    scorer = load_reward_model(tiny_models["llama"], rm)
    assert scorer.cpu_bf16 is reward_bf16
    demo_rewards = scorer.score(prompts, demos_text)[:4]  # score_demos: every split in one list
    demos = [{"id": i, "prompt": p, "demo": d, "demo_tokens": len(d.split()), "demo_reward": r}
             for i, (p, d, r) in enumerate(zip(prompts, demos_text, demo_rewards))]
    params = {"task": "wiki", "cpu_bf16": not reward_bf16, "self_bleu_samples": 4, "alignment": {},
              "reward_model": {**rm, "batch_size": 2}}
    models = EvalModels(policy=tiny_models["llama"], rm=tiny_models["llama"])
    row, scored, _ = evaluate_run(demos, demonstrations_as_run(demos), [], params, models, "demonstrations", 0, True)
    assert [s["reward"] for s in scored] == demo_rewards
    assert row["alignment"] == 0.0


@pytest.mark.parametrize("cpu_bf16", [False, True])
def test_reward_model_trains_under_bf16_autocast_only_when_asked(tiny_models, tmp_path, monkeypatch, cpu_bf16):
    from rcfd.train import reward_model as RMT

    rows = [{"text": t, "label": int("wonderful" in t or "moving" in t), "split": "eval" if i % 5 == 0 else "train"}
            for i, t in enumerate(CORPUS[:60])]
    seen = []  # the dtype the classifier head's linear layer computes in, at every call
    linear = torch.nn.Linear.forward

    def recording(self, x):
        out = linear(self, x)
        if self.out_features == 2:
            seen.append((torch.is_grad_enabled(), out.dtype))
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", recording)
    cfg = RMT.RewardTrainConfig(epochs=1.0, batch_size=8, max_length=32, cpu_bf16=cpu_bf16, device="cpu")
    metrics = RMT.train_reward_classifier(tiny_models["bert"], rows, cfg, tmp_path / "rm")
    training = {dtype for grad, dtype in seen if grad}
    scoring = {dtype for grad, dtype in seen if not grad}
    assert training == {torch.bfloat16 if cpu_bf16 else torch.float32}
    assert scoring == {torch.float32}  # the held-out accuracy (and every later score) in fp32
    assert metrics["steps"] == 6 and 0 <= metrics["heldout_accuracy"] <= 1
    saved = ClassifierReward(str(tmp_path / "rm"), RewardModelConfig(max_length=32), "cpu")
    assert all(p.dtype == torch.float32 for p in saved.model.parameters())


@pytest.mark.parametrize("task", ["wiki", "movies"])
def test_every_sample_counts_an_empty_one_scores_the_lowest_of_its_evaluation_set(tiny_models, task):
    """metrics.EMPTY_RULE, for the log-likelihood reward (wiki: an empty text has no token to average,
    NaN before) and for a classifier reward (movies: the RM could score the bare prompt, but one rule
    serves every use case): an empty sample gets the lowest reward and log-likelihood among the run's
    non-empty samples and the demonstrations; nothing is dropped (n, A and every mean count it)."""
    from rcfd.evaluate.run import EvalModels, evaluate_run
    from rcfd.rewards import LogLikelihood, load_reward_model

    prompts = ["This quiet film", "The", "Her new film", "That loud film"]
    demos = [{"id": i, "prompt": p, "demo": d, "demo_tokens": 3, "demo_reward": r}
             for i, (p, d, r) in enumerate(zip(prompts, [" was wonderful.", " cast kept me", " was moving.", " was a mess."],
                                               [-9.0, -2.0, -3.0, -4.0]))]
    completions = [" was dull.", "", " kept me smiling.", ""]
    gens = [{"id": i, "sample": 0, "prompt": p, "completion": c, "completion_tokens": len(c.split())}
            for i, (p, c) in enumerate(zip(prompts, completions))]
    if task == "wiki":
        rm = {"kind": "loglik", "batch_size": 2, "device": "cpu"}
        models = EvalModels(tiny_models["llama"], tiny_models["llama"])
        scorer = LogLikelihood(tiny_models["llama"])
        demos = [dict(d, demo_reward=r) for d, r in zip(demos, scorer.score(prompts, [d["demo"] for d in demos]))]
    else:
        rm = {"kind": "classifier", "batch_size": 2, "device": "cpu", "max_length": 32}
        models = EvalModels(tiny_models["llama"], tiny_models["bert"])
    params = {"task": task, "self_bleu_samples": 4, "alignment": {}, "reward_model": rm}
    row, scored, _ = evaluate_run(demos, gens, [], params, models, "base", 0)

    base = LogLikelihood(tiny_models["llama"])
    loglik = [base.score([p], [c])[0] if c else None for p, c in zip(prompts, completions)]
    demo_loglik = base.score(prompts, [d["demo"] for d in demos])
    if task == "wiki":
        reward = loglik
    else:
        reward = load_reward_model(tiny_models["bert"], rm).score(prompts, completions)
        reward = [r if c else None for r, c in zip(reward, completions)]
    lowest = min([r for r in reward if r is not None] + [d["demo_reward"] for d in demos])
    lowest_loglik = min([v for v in loglik if v is not None] + demo_loglik)
    expected = [lowest if r is None else r for r in reward]
    assert [s["reward"] for s in scored] == pytest.approx(expected, abs=1e-5)
    assert [s["loglik"] for s in scored] == pytest.approx([lowest_loglik if v is None else v for v in loglik], abs=1e-5)
    assert row["n"] == 4 and row["empty_share"] == 0.5
    assert row["avg_reward"] == pytest.approx(sum(expected) / 4, abs=1e-5) and np.isfinite(row["alignment"])
    assert row["mean_tokens"] == (2 + 3) / 4  # the empty ones count as 0 tokens


def test_greedy_decoding_writes_one_sample_per_prompt(tiny_models):
    """Greedy decoding is deterministic: `samples_per_prompt` copies would be duplicates that read as
    self-BLEU 100 and halve distinct-n, so it writes one sample per prompt; sampling writes them all."""
    from rcfd.evaluate import generate as G

    rows = [{"id": i, "prompt": p} for i, p in enumerate(["This quiet film", "Her new cast", "The"])]
    greedy = G.generate(tiny_models["llama"], None, rows, G.GenerateConfig(max_new_tokens=4, temperature=0.0,
                                                                         samples_per_prompt=2, device="cpu"))
    assert [(g["id"], g["sample"]) for g in greedy] == [(0, 0), (1, 0), (2, 0)]
    sampled = G.generate(tiny_models["llama"], None, rows, G.GenerateConfig(max_new_tokens=4, samples_per_prompt=2,
                                                                          device="cpu"))
    assert len(sampled) == 6


def test_classifier_rm_reports_accuracy_on_prefixes_and_on_whole_reviews(tiny_models, tmp_path):
    """A held-out row whose text is a prefix carries its whole review (`full_text`, rcfd.data.prepare): the RM's
    metrics give the accuracy on both, side by side, the whole reviews up to the encoder's length."""
    from rcfd.train import reward_model as RMT

    rows = [{"text": " ".join(t.split()[:4]), "full_text": t, "label": int("wonderful" in t or "moving" in t),
             "split": "eval" if i % 5 == 0 else "train"} for i, t in enumerate(CORPUS[:60])]
    for r in rows:
        if r["split"] == "train":
            r.pop("full_text")
    cfg = RMT.RewardTrainConfig(epochs=1.0, batch_size=8, max_length=32, device="cpu")
    metrics = RMT.train_reward_classifier(tiny_models["bert"], rows, cfg, tmp_path / "rm")
    held = [r for r in rows if r["split"] == "eval"]
    scorer = ClassifierReward(str(tmp_path / "rm"), RewardModelConfig(max_length=128), "cpu")
    right = [p == r["label"] for p, r in zip(scorer.logits([r["full_text"] for r in held]).argmax(-1).tolist(), held)]
    assert metrics["n_heldout_full_reviews"] == len(held) == 12 and metrics["full_review_max_length"] == 128
    assert metrics["heldout_accuracy_full_reviews"] == sum(right) / len(held)


def test_cpu_bf16_falls_back_to_fp32_without_native_bf16(monkeypatch, caplog, tmp_path, request):
    """A cpu_bf16 setting takes effect only on a CPU that multiplies bf16 natively: elsewhere torch
    emulates bf16 (50x slower than fp32 on an AVX2 EPYC core), so autocast stays off, the trainers get
    bf16=False, and the log says so once; on GPU the settings do nothing (bf16 is the dtype there)."""
    from rcfd import utils
    from rcfd.train.checkpoints import Checkpoints
    from rcfd.train.common import trainer_args
    from rcfd.train.rl import RLConfig

    request.addfinalizer(utils.native_cpu_bf16.cache_clear)  # the next test sees the suite's setting again
    for native in ("0", "1"):
        monkeypatch.setenv("RCFD_NATIVE_CPU_BF16", native)
        utils.native_cpu_bf16.cache_clear()
        monkeypatch.setattr(utils, "_FP32_FALLBACK_SAID", [])
        with caplog.at_level("WARNING", logger="rcfd"):
            caplog.clear()
            with utils.cpu_autocast(True, "cpu"):
                assert torch.is_autocast_enabled("cpu") is (native == "1")
            assert utils.cpu_bf16_in_use(True, "cpu") is (native == "1")
            said = [r for r in caplog.records if "neither AVX512-BF16 nor AMX" in r.message]
            assert len(said) == (0 if native == "1" else 1)  # once, however often asked
        assert not utils.cpu_bf16_in_use(True, "cuda:0") and not utils.cpu_bf16_in_use(False, "cpu")
        with utils.cpu_autocast(False, "cpu"):
            assert not torch.is_autocast_enabled("cpu")
        args = trainer_args(RLConfig(cpu_bf16=True), Checkpoints(tmp_path), "cpu")
        assert args["bf16"] is (native == "1")  # TRL's forward and backward under autocast, or fp32


def test_energy_rewards_group_the_samples_by_prompt():
    """rcfd_energy: each sample is scored against its own prompt's demonstration and the prompt's
    other samples, wherever they sit in the batch; k < 3 under RLOO is refused."""
    from rcfd.rewards import rcfd_energy_reward
    from rcfd.utils import InputError

    class Length:  # R_RM stand-in: the completion's length in characters
        def score(self, prompts, completions):
            return [float(len(c)) for c in completions]

    reward = make_reward_func("rcfd_energy", Length())
    prompts, completions = ["a", "b", "a", "b", "a", "b"], ["x", "yyyy", "xxx", "y", "xxxxx", "yy"]
    got = reward(prompts=prompts, completions=completions, demo_reward=[2.0, 0.0, 2.0, 0.0, 2.0, 0.0])
    # by hand, k = 3: -|r - 2| + (k-1)/(k-2) * mean |r - r'| over the other two
    a = rcfd_energy_reward(torch.tensor([1.0, 3.0, 5.0]), 2.0)
    assert a.tolist() == pytest.approx([-1 + 2 * 3, -1 + 2 * 2, -3 + 2 * 3])
    assert got[0::2] == pytest.approx(a.tolist())
    assert got[1::2] == pytest.approx(rcfd_energy_reward(torch.tensor([4.0, 1.0, 2.0]), 0.0).tolist())
    with pytest.raises(InputError, match="3\\+ samples per prompt"):
        reward(prompts=["a", "a"], completions=["x", "y"], demo_reward=[0.0, 0.0])
