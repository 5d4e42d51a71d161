"""Preemption: a training job killed mid-way (SIGKILL right after a checkpoint, or while a checkpoint
is being written, as a node loss or a SLURM time limit would) resumes from its last complete
checkpoint when rerun, and ends where an uninterrupted run with the same seed ends, on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rcfd.utils import write_jsonl

from .conftest import CORPUS, REPO

RL = {"steps": 4, "checkpoint_steps": 2, "prompts_per_step": 2, "num_generations": 2, "learning_rate": 1e-2,
      "max_new_tokens": 6, "lora": {"r": 4, "lora_alpha": 8, "dropout": 0.0}, "seed": 0, "device": "cpu",
      "snapshot_steps": [1, 3]}  # adapters kept along training (the gold-vs-proxy curve)
SFT = {"steps": 4, "checkpoint_steps": 2, "logging_steps": 1, "batch_size": 4, "learning_rate": 1e-2, "max_length": 32,
       "lora": {"r": 4, "lora_alpha": 8, "dropout": 0.0}, "seed": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "demos_scored.jsonl"
    write_jsonl(path, [{"split": "train", "prompt": " ".join(t.split()[:3]), "demo": " " + " ".join(t.split()[3:]),
                        "demo_reward": 0.1 * (i % 5)} for i, t in enumerate(CORPUS[:16])])
    return path


def train(method, params, tiny_models, data, out, kill_after=None, kill_during_save=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if kill_after is not None:
        env["RCFD_KILL_AFTER_STEP"] = str(kill_after)
    if kill_during_save is not None:
        env["RCFD_KILL_DURING_SAVE"] = str(kill_during_save)
    cmd = [sys.executable, "-m", "rcfd", "train", "--threads", "1", "--params", json.dumps(params),
           "--method", method, "--policy", tiny_models["llama"], "--rm", tiny_models["bert"],
           "--data", str(data), "--out", str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def adapter(out):
    return load_file(out / "adapter_model.safetensors")


@pytest.mark.parametrize("method,params", [
    ("rcfd", {"rl": RL, "reward_model": {"device": "cpu", "batch_size": 8, "max_length": 32}}),
    ("rcfd_ppo", {"rl": RL, "reward_model": {"device": "cpu", "batch_size": 8, "max_length": 32}}),
    ("sft", {"sft": SFT}),
])
def test_killed_training_resumes_and_matches_an_uninterrupted_run(method, params, tiny_models, prompts, tmp_path):
    whole = train(method, params, tiny_models, prompts, tmp_path / "whole" / "policy")
    assert whole.returncode == 0, whole.stderr[-3000:]

    # killed right after the checkpoint of step 2
    out = tmp_path / "killed" / "policy"
    killed = train(method, params, tiny_models, prompts, out, kill_after=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (out.with_name("checkpoints") / "checkpoint-2").is_dir()
    assert not (out / "adapter_model.safetensors").exists()
    assert_resumes_like(whole, tmp_path / "whole" / "policy", method, params, tiny_models, prompts, out)

    # killed in the middle of writing the checkpoint of step 4: the one of step 2 is resumed
    out = tmp_path / "killed_while_saving" / "policy"
    killed = train(method, params, tiny_models, prompts, out, kill_during_save=4)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    left = sorted(p.name for p in out.with_name("checkpoints").iterdir())
    assert "checkpoint-2" in left and any(name.startswith("checkpoint-4") for name in left), left
    assert_resumes_like(whole, tmp_path / "whole" / "policy", method, params, tiny_models, prompts, out)


def assert_resumes_like(whole, whole_out, method, params, tiny_models, prompts, out):
    """Rerun the killed job at `out`: it resumes from checkpoint-2 and ends where the uninterrupted
    run (`whole_out`) ended, with the same losses for steps 3-4."""
    resumed = train(method, params, tiny_models, prompts, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "checkpoint-2" in resumed.stderr
    assert not out.with_name("checkpoints").exists()  # dropped once the policy is saved

    a, b = adapter(whole_out), adapter(out)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    # the resumed run logs steps 3-4 only; they equal the uninterrupted run's
    log_a = pd.read_csv(whole_out / "train_log.csv").dropna(subset=["loss"])
    log_b = pd.read_csv(out / "train_log.csv").dropna(subset=["loss"])
    tail = log_a[log_a["step"] > 2].reset_index(drop=True)
    pd.testing.assert_series_equal(tail["loss"], log_b[log_b["step"] > 2]["loss"].reset_index(drop=True))
    if "rl" in params:  # the snapshots of steps 1 (before the kill) and 3 (after it) as in the whole run
        assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step1", "step3"]
        for step in ("step1", "step3"):
            a, b = adapter(whole_out / "snapshots" / step), adapter(out / "snapshots" / step)
            for k in a:
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"{step} {k}")
        first, last = adapter(out / "snapshots" / "step1"), adapter(out)
        assert any(not torch.equal(first[k], last[k]) for k in first)  # an earlier adapter, not the final one
    if "rl" in params:  # RLOO and PPO log the samples' raw R_RM and length every step (rewards.log_monitors)
        for column in ("monitor/reward_model", "monitor/length", "monitor/empty"):
            assert log_a[column].notna().all() and log_b[column].notna().all(), column
        assert (log_a["monitor/length"] <= params["rl"]["max_new_tokens"]).all()
    if method == "rcfd":  # RLOO times every step's phases (trl_patches.StepPhases); step_time holds all but the optimizer's
        from rcfd.train.phases import PHASES

        steps = log_a.dropna(subset=["loss"])
        phases = steps[[f"time/{p}" for p in PHASES]]
        assert (phases > 0).all().all(), phases
        assert (phases.drop(columns="time/optimizer").sum(axis=1) <= steps["step_time"]).all()


def test_checkpoints_of_other_settings_are_not_resumed(tiny_models, prompts, tmp_path):
    params = {"sft": SFT}
    out = tmp_path / "run" / "policy"
    assert train("sft", params, tiny_models, prompts, out, kill_after=2).returncode == -signal.SIGKILL
    changed = {"sft": dict(SFT, learning_rate=5e-3)}
    rerun = train("sft", changed, tiny_models, prompts, out)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "from other settings: starting afresh" in rerun.stderr and "resuming from" not in rerun.stderr


def test_data_parallel_training_keeps_the_global_batch(tiny_models, prompts, tmp_path):
    """`processes: 2` reruns the step as two processes (gloo on CPU, NCCL on GPUs) that split each
    step's batch; the policy and its log are written once, and each step sees as many tokens as a
    one-process run."""
    params = {"rl": dict(RL, checkpoint_steps=0, logging_steps=1),
              "reward_model": {"device": "cpu", "batch_size": 8, "max_length": 32}}
    one = train("rcfd", params, tiny_models, prompts, tmp_path / "one" / "policy")
    two = train("rcfd", dict(params, rl=dict(params["rl"], processes=2)), tiny_models, prompts, tmp_path / "two" / "policy")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert "launching 2 data-parallel processes" in two.stderr
    assert (tmp_path / "two" / "policy" / "adapter_model.safetensors").exists()
    log_one = pd.read_csv(tmp_path / "one" / "policy" / "train_log.csv").dropna(subset=["loss"])
    log_two = pd.read_csv(tmp_path / "two" / "policy" / "train_log.csv").dropna(subset=["loss"])
    assert list(log_two["step"]) == list(log_one["step"]) == [1, 2, 3, 4]
    assert list(log_two["num_tokens"]) == list(log_one["num_tokens"])


def test_old_logprobs_from_the_loss_make_the_first_ratio_one(tiny_models, prompts, tmp_path):
    """rl.old_logprobs: TRL recomputes the sampling policy's log-probabilities in a second forward,
    whose LoRA dropout masks differ from the loss forward's, so the first iteration's ratio is not 1
    and samples get clipped; "loss" takes the loss forward's own (ratio 1: nothing clipped) and skips
    that pass (no policy forward in its phase). At beta > 0 the KL needs the pass: "loss" falls back to it."""
    rm = {"device": "cpu", "batch_size": 8, "max_length": 32}
    rl = dict(RL, steps=4, checkpoint_steps=0, learning_rate=0.3, lora={"r": 4, "lora_alpha": 8, "dropout": 0.5})
    logs = {}
    for name, method, old in [("recompute", "rcfd", "recompute"), ("loss", "rcfd", "loss"), ("kl", "beta0.1", "loss")]:
        out = tmp_path / name / "policy"
        done = train(method, {"rl": dict(rl, old_logprobs=old), "reward_model": rm}, tiny_models, prompts, out)
        assert done.returncode == 0, done.stderr[-3000:]
        logs[name] = pd.read_csv(out / "train_log.csv").dropna(subset=["loss"])
    assert logs["recompute"]["clip_ratio/region_mean"].max() > 0  # dropout 0.5: the two passes disagree
    assert (logs["loss"]["clip_ratio/region_mean"] == 0).all()
    # the policy's forward passes in TRL's no-grad phase, counted per step (trl_patches.StepPhases)
    assert (logs["recompute"]["forwards/logprobs_no_grad"] > 0).all()
    assert (logs["loss"]["forwards/logprobs_no_grad"] == 0).all()
    assert (logs["kl"]["forwards/logprobs_no_grad"] > 0).all()
    assert (logs["loss"]["forwards/train_forward"] > 0).all()


@pytest.mark.parametrize("method,generations", [("rcfd_energy", 3), ("rcfd_energy_ppo", 2)])
def test_energy_rcfd_trains_with_whole_prompt_groups(method, generations, tiny_models, prompts, tmp_path):
    """RCfD's energy score compares each sample with its prompt's other samples: the trainer must hand
    the reward every sample of a prompt at once (a split group would have fewer than RLOO's 3 and be
    refused), and the objective it logs is finite."""
    rl = dict(RL, steps=2, checkpoint_steps=0, num_generations=generations, snapshot_steps=[])
    out = tmp_path / "policy"
    done = train(method, {"rl": rl, "reward_model": {"device": "cpu", "batch_size": 8, "max_length": 32}},
                 tiny_models, prompts, out)
    assert done.returncode == 0, done.stderr[-3000:]
    log = pd.read_csv(out / "train_log.csv").dropna(subset=["loss"])
    assert len(log) == 2 and log["reward"].notna().all()
