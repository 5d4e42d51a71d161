"""The evaluation of one run: reward, alignment score A, log-likelihood curve, repetition,
diversity, LLM-judge scores and MAUVE of its generations (or of the demonstrations themselves)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..rewards import LogLikelihood, load_reward_model, mean_or_nan
from ..utils import InputError, from_params, log, pick_device
from . import metrics as M


@dataclass
class EvalModels:
    """Where the evaluation's models are: folders or hub ids ("none" or None: not configured)."""

    policy: str  # the frozen initial policy: log-likelihoods (the naturalness proxy, the curve)
    rm: str  # the task's reward model (for use case 1, the initial policy itself)
    judge: str | None = None
    features: str | None = None  # MAUVE's sentence encoder


def demonstrations_as_run(demos: list[dict]) -> list[dict]:
    """The demonstrations in the shape of a run's generations, so they are evaluated like a method."""
    return [{"id": d["id"], "sample": 0, "prompt": d["prompt"], "completion": d["demo"],
             "completion_tokens": d["demo_tokens"]} for d in demos]


def check_finite(values: list[float], gens: list[dict], what: str, method: str) -> None:
    """No NaN reaches a metric: one line naming the run and the first sample that has one."""
    for v, g in zip(values, gens):
        if not np.isfinite(v):
            raise InputError(f"evaluate {method}: sample {g['id']}/{g['sample']} has {what} {v} "
                             f"(completion {g['completion'][:40]!r})")


def evaluate_run(demos: list[dict], gens: list[dict], train: list[dict], params: dict, models: EvalModels,
                 method: str, seed: int, is_demonstrations: bool = False) -> tuple[dict, list[dict], pd.DataFrame]:
    """One run's metrics row, its scored samples (reward, log-lik and judge score per sample) and
    its log-likelihood-vs-position curve. `demos` are the evaluation prompts with their
    demonstration and its reward; `train` the training prompts (the judge's one-shot example)."""
    prompts, completions = [g["prompt"] for g in gens], [g["completion"] for g in gens]
    texts = [x + y for x, y in zip(prompts, completions)]
    rm = params["reward_model"]
    # token log-likelihoods under the frozen initial policy: the naturalness proxy, the
    # log-lik-vs-position curve and, in use case 1, the reward itself. Where it is the reward it
    # runs in the reward's precision (reward_model.cpu_bf16), whatever evaluate.cpu_bf16 says: the
    # demonstrations' rewards it is compared with (A) come from score_demos in that precision, and
    # a precision change alone would move A.
    same_model = rm.get("kind") == "loglik" and models.rm == models.policy
    bf16 = rm.get("cpu_bf16", True) if same_model else params.get("cpu_bf16", True)
    base = LogLikelihood(models.policy, rm["batch_size"], pick_device(rm["device"]), bf16)
    token_lps = base.token_logprobs(prompts, completions)
    loglik = [mean_or_nan(t) for t in token_lps]
    rewards = loglik if same_model else load_reward_model(models.rm, rm).score(prompts, completions)
    demo_rewards = [d["demo_reward"] for d in demos]
    empty = [not c for c in completions]
    if any(empty):
        demo_loglik = demo_rewards if same_model else base.score([d["prompt"] for d in demos], [d["demo"] for d in demos])
        rewards, loglik = M.worst_for_empty(rewards, empty, demo_rewards), M.worst_for_empty(loglik, empty, demo_loglik)
        log.info("%d empty sample(s) of %d: %s", sum(empty), len(empty), M.EMPTY_RULE)
    check_finite(rewards, gens, "reward", method)
    check_finite(loglik, gens, "log-likelihood", method)
    scored = [dict(g, method=method, seed=seed, reward=r, loglik=ll) for g, r, ll in zip(gens, rewards, loglik)]
    alignment_cfg = from_params(M.AlignmentConfig, params["alignment"], "alignment")
    row = {
        "task": params["task"], "method": method, "seed": seed, "n": len(scored), "empty_share": float(np.mean(empty)),
        "avg_reward": float(np.mean(rewards)), "std_reward": float(np.std(rewards)),
        "demo_avg_reward": float(np.mean(demo_rewards)),
        "alignment": M.alignment_score(demo_rewards, rewards, alignment_cfg),
        # with two rewards (use case 3) the paper's A is the mean of the per-reward scores
        "alignment_length": M.alignment_score([d["demo_tokens"] for d in demos],
                                              [g["completion_tokens"] for g in gens], alignment_cfg),
        "loglik_base": float(np.mean(loglik)),
        "mean_tokens": float(np.mean([g["completion_tokens"] for g in gens])),
        "seq_rep_4": M.seq_repetition(completions, 4),
        **M.diversity(completions, params["self_bleu_samples"], seed),
    }
    row["alignment_two"] = (row["alignment"] + row["alignment_length"]) / 2
    if "vader_success" in params.get("proxies", []):
        row["success_vader"] = M.vader_success(texts)
    if params.get("judge"):
        judge = {**params["judge"], "cpu_bf16": params.get("cpu_bf16", True)}
        row.update(judge_scores(models.judge, judge, rm["device"], gens, scored, train))
    if params.get("mauve"):  # the demonstrations against themselves would be trivially 1: left empty
        row["mauve"] = float("nan") if is_demonstrations else \
            mauve(models.features, params["mauve"], rm["device"], [d["demo"] for d in demos], completions)
    curve = pd.DataFrame(M.position_curve(token_lps, params.get("position_window", 8))).assign(
        task=params["task"], method=method, seed=seed)
    return row, scored, curve


def judge_scores(judge: str | None, params: dict, device: str, gens: list[dict], scored: list[dict],
                 train: list[dict]) -> dict[str, float]:
    """The LLM judge's scores of one run (rcfd/evaluate/judge.py); each judged sample's soft score per
    question is added to its scored row (judge_<question>)."""
    from . import judge as J

    cfg = from_params(J.JudgeConfig, {**params, "device": device}, "evaluate.judge")
    if judge in (None, "none"):
        raise InputError("evaluate.judge is configured but no --judge model was given")
    t0 = time.time()
    if cfg.example_index >= len(train):
        raise InputError(f"evaluate.judge.example_index {cfg.example_index}: the data have {len(train)} training prompts")
    keep = J.judged_indices(gens, cfg.max_samples)
    soft = J.judge_samples(J.Judge(judge, cfg), [gens[i] for i in keep], train[cfg.example_index])
    for name, s in soft.items():
        for i, v in zip(keep, s):
            scored[i][f"judge_{name}"] = float(v)
    seconds = time.time() - t0
    log.info("judge: %d samples x %d questions in %.1fs", len(keep), len(soft), seconds)
    # judge_seconds is a timing, not a result: the evaluate step moves it into the provenance
    return {**J.summarise(soft), "n_judged": len(keep), "judge_seconds": seconds, "judge_model": J.judge_name(judge)}


def mauve(features: str | None, params: dict, device: str, demos: list[str], completions: list[str]) -> float:
    """MAUVE between the completions and the demonstrations, on the local encoder's features."""
    cfg = from_params(M.MauveConfig, {**params, "device": device}, "evaluate.mauve")
    if features in (None, "none"):
        raise InputError("evaluate.mauve is configured but no --features model was given")
    t0 = time.time()
    feats = [M.sentence_features(features, texts, cfg.batch_size, cfg.max_length, pick_device(cfg.device))
             for texts in (demos, completions)]
    score = M.mauve_score(*feats, cfg)
    log.info("mauve: %d demonstrations vs %d completions in %.1fs", len(demos), len(completions), time.time() - t0)
    return score
