"""The training steps (workflow/rules/train.smk): the reward model, the demonstrations' rewards, and each
method's policy (SFT, DPO, RL with RLOO or PPO); and the RL-step benchmark."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import assets
from ..utils import InputError, from_params, log, read_rows, write_json, write_jsonl
from . import distributed


def step_train_reward_model(a) -> None:
    """Fine-tune the reward model: a classifier (movie reviews) or a Bradley-Terry preference model;
    then score every demonstration with it (--prompts) to record how close to saturation it is."""
    from .reward_model import RewardTrainConfig, train_preference_rm, train_reward_classifier

    cfg = from_params(RewardTrainConfig, a.params["train"], "reward_model.train")
    if cfg.loss == "bradley_terry":
        rows = read_rows(a.data, ["split", "prompt", "chosen", "rejected"])
        metrics = train_preference_rm(a.base, rows, cfg, a.out)
    elif cfg.loss == "classification":
        rows = read_rows(a.data, ["split", "text"], numbers=["label"])
        metrics = train_reward_classifier(a.base, rows, cfg, a.out)
    else:
        raise InputError(f"reward_model.train.loss {cfg.loss!r}: expected 'classification' or 'bradley_terry'")
    write_json(a.metrics, {**metrics, **_demo_saturation(a, a.params["score"])})


def _demo_saturation(a, score: dict) -> dict:
    """The trained RM's scores of every demonstration (--prompts): their range, and the fraction
    near the maximum (rcfd.evaluate.metrics.near_max_fraction), with a histogram beside --metrics."""
    from ..evaluate.metrics import near_max_fraction
    from ..report.plots import demo_reward_histogram
    from ..rewards import load_reward_model

    demos = read_rows(a.prompts, ["prompt", "demo"])
    rewards = load_reward_model(a.out, score).score(
        [d["prompt"] for d in demos], [d["demo"] for d in demos])
    stats = {"demo_reward_min": min(rewards), "demo_reward_max": max(rewards),
             "demo_reward_mean": sum(rewards) / len(rewards), "demo_near_max_fraction": near_max_fraction(rewards)}
    demo_reward_histogram(rewards, Path(a.metrics).with_name("demo_rewards"),
                          f"{len(rewards)} demonstrations; {100 * stats['demo_near_max_fraction']:.1f}% within 5% "
                          "of the range of the maximum")
    return stats


def _reward_model(a):
    """The task's reward model (--rm): params {"reward_model": {kind, device, <scorer settings>}}."""
    from ..rewards import load_reward_model

    return load_reward_model(a.rm, a.params.get("reward_model", {}))


def step_score_demos(a) -> None:
    """Score each prompt's demonstration once: R_RM(x, y_demo), the target RCfD pulls towards."""
    rows = read_rows(a.prompts, ["prompt", "demo"])
    rewards = _reward_model(a).score([r["prompt"] for r in rows], [r["demo"] for r in rows])
    write_jsonl(a.out, [dict(r, demo_reward=s) for r, s in zip(rows, rewards)])


def step_train(a) -> None:
    """Train one method's policy (SFT, DPO, or RL on R / R_beta / R_alpha / RCfD with RLOO or PPO)
    on the training prompts; resumes from its checkpoints after an interruption."""
    from ..methods import parse_method
    from .checkpoints import Checkpoints
    from .common import write_log_history

    method = parse_method(a.method)
    alpha_unit = a.params.get("alpha_unit", "per_token")  # R_alpha's unit (rewards.alpha_per_token)
    lengths = method.objective == "rcfd2" or (method.alpha and alpha_unit != "per_token")
    numbers = (["demo_reward"] if method.kind == "rl" else []) + (["demo_tokens"] if lengths else [])
    rows = read_rows(a.data, ["prompt", "demo"] + (["rejected"] if method.kind == "dpo" else []), numbers, split="train")
    if method.shuffled_targets:
        from .rl import shuffle_targets

        rows = shuffle_targets(rows, a.params["rl"]["seed"])
    # checkpoints of an interrupted attempt are resumed only by a run with the same settings and data
    run = {"method": a.method, "params": a.params, "policy": a.policy, "rm": a.rm, "data": assets.sha256_of(a.data)}
    ckpt = Checkpoints(Path(a.out).with_name("checkpoints"), json.dumps(run, sort_keys=True))
    if not distributed.is_launched():
        ckpt.claim()
        section = next(a.params[k] for k in ("rl", "sft", "dpo") if k in a.params)
        distributed.relaunch(section.get("processes", 1), a.argv)  # returns only when one process is asked for
    t0, summary = time.time(), {}
    if method.kind == "sft":
        from .sft import SFTStepConfig, train_sft

        history = train_sft(a.policy, rows, from_params(SFTStepConfig, a.params["sft"], "train.sft"), a.out, ckpt)
    elif method.kind == "rl":
        from ..models import load_tokenizer
        from ..rewards import alpha_per_token, make_reward_func
        from .rl import rl_config, train_rl

        eos = load_tokenizer(a.policy).eos_token_id  # |y| counts policy tokens before the EOS
        cfg = rl_config(a.params["rl"], method.algorithm)
        alpha = alpha_per_token(method.alpha, alpha_unit, rows)
        if method.alpha:
            log.info("R_alpha: alpha %g (%s) = %.5g per token", method.alpha, alpha_unit, alpha)
            summary["alpha_per_token"] = alpha
        reward_func = make_reward_func(method.objective, _reward_model(a), alpha, eos, cfg.empty_completion,
                                       leave_one_out=method.algorithm == "rloo")
        history = train_rl(a.policy, rows, reward_func, method.beta, cfg, a.out, ckpt)
    elif method.kind == "dpo":
        from .sft import DPOStepConfig, train_dpo

        cfg = from_params(DPOStepConfig, a.params["dpo"], "train.dpo")
        steps = cfg.early_steps if method.name == "dpo_early" else cfg.steps
        history = train_dpo(a.policy, a.params["sft_policy"], rows, cfg, steps, a.out, ckpt)
    else:
        raise InputError(f"method {a.method!r} is not trained")
    if not distributed.is_main():
        return
    write_log_history(history, Path(a.out) / "train_log.csv")
    write_json(Path(a.out) / "train_summary.json", {"method": a.method, "seconds": round(time.time() - t0, 1),
                                                      "steps": len([h for h in history if "loss" in h]), **summary})


def step_bench(a) -> None:
    """GPU throughput of the RL step (rcfd/train/bench.py): generation, training phase and whole RLOO
    steps, ours vs plain TRL. --shape tiny|smollm2-135m|llama2-7b, --use-case movies|wiki|summaries
    (the paper's batch and lengths), --out folder (default results/bench); --params overrides the
    other settings, e.g. {"prompts": 25, "prompt_tokens": 10, "new_tokens": 160, "generations": 2,
    "warmup": 1, "steps": 3}."""
    from .bench import BenchConfig, run_bench

    p = dict(a.params)
    p.update({k: getattr(a, k) for k in ("shape", "use_case") if getattr(a, k)})
    run_bench(from_params(BenchConfig, p, "bench"), a.out or "results/bench")
