"""Training steps: the sentiment reward model, the RL policies (R, R_beta, RCfD) and SFT.

RL uses TRL's RLOO trainer: it samples `num_generations` completions per prompt, scores them
with our reward callable, adds -beta * KL(pi || pi_0) to the reward (the paper's R_beta; beta = 0
for R and RCfD), normalises per batch and takes a clipped policy-gradient step on LoRA weights.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback

from .models import LoraSettings, load_tokenizer
from .rewards import ClassifierReward, RewardModelConfig, make_reward_func, set_head_activation
from .utils import InputError, batched, log, pick_device, pick_dtype, seed_everything, write_json


# --------------------------------------------------------------------------- reward model
@dataclass
class RewardTrainConfig:
    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 64
    weight_decay: float = 0.01
    loss: str = "classification"  # "classification" (label per text) or "bradley_terry" (preference pairs)
    head_activation: str = "tanh"  # "relu": DistilBERT's unbounded head (rewards.set_head_activation)
    seed: int = 0
    device: str = "auto"


def train_reward_classifier(base: str, rows: list[dict], cfg: RewardTrainConfig, out: str | Path) -> dict:
    """Fine-tune an encoder as a 2-class sentiment classifier (label 1 = positive).

    Returns {"heldout_accuracy": ..., ...}; the paper's RM is a DistilBERT IMDB classifier.
    """

    def loss(model, tok, batch, device):
        enc = tok([r["text"] for r in batch], padding=True, truncation=True,
                  max_length=cfg.max_length, return_tensors="pt").to(device)
        return model(**enc, labels=torch.tensor([r["label"] for r in batch], device=device)).loss

    def accuracy(scorer, held):
        predicted = scorer.logits([r["text"] for r in held]).argmax(-1).tolist()
        return sum(p == r["label"] for p, r in zip(predicted, held)) / len(held)

    return _train_encoder(base, rows, cfg, out, num_labels=2, loss=loss, accuracy=accuracy,
                          score_cfg=RewardModelConfig(max_length=cfg.max_length))


def train_preference_rm(base: str, rows: list[dict], cfg: RewardTrainConfig, out: str | Path) -> dict:
    """Fine-tune an encoder as a Bradley-Terry preference model: one logit r(x, y) on the pair
    (prompt, summary), loss -log sigmoid(r(x, chosen) - r(x, rejected)).

    Returns {"heldout_accuracy": fraction of held-out pairs ranked right, ...}. Stands in for the
    paper's human-preference RM (OpenAssistant DeBERTa), which does not ship offline.
    """
    from .rewards import encode

    def loss(model, tok, batch, device):
        prompts = [r["prompt"] for r in batch] * 2
        enc = encode(tok, prompts, [r["chosen"] for r in batch] + [r["rejected"] for r in batch], cfg.max_length)
        chosen, rejected = model(**enc.to(device)).logits[:, 0].chunk(2)
        return -torch.nn.functional.logsigmoid(chosen - rejected).mean()

    def accuracy(scorer, held):
        prompts = [r["prompt"] for r in held]
        chosen = scorer.score(prompts, [r["chosen"] for r in held])
        rejected = scorer.score(prompts, [r["rejected"] for r in held])
        return sum(c > r for c, r in zip(chosen, rejected)) / len(held)

    return _train_encoder(base, rows, cfg, out, num_labels=1, loss=loss, accuracy=accuracy,
                          score_cfg=RewardModelConfig(max_length=cfg.max_length, positive_label=0, pair_input=True))


def _train_encoder(base, rows, cfg: RewardTrainConfig, out, num_labels, loss, accuracy, score_cfg) -> dict:
    """The reward models' shared loop: AdamW, linear decay, gradient clipping, `loss(model, tok,
    batch, device)` per batch; then save and measure `accuracy(scorer, held_out_rows)`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    tok = AutoTokenizer.from_pretrained(base)
    # a fresh head: a base that already has a classifier of another size (tiny smoke models) drops it
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=num_labels,
                                                               ignore_mismatched_sizes=True).to(device)
    set_head_activation(model, cfg.head_activation)
    train = [r for r in rows if r["split"] == "train"]
    held = [r for r in rows if r["split"] == "eval"]
    if not train or not held:
        raise InputError("reward model data: needs rows with split 'train' and split 'eval'")

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    n_steps = max(1, int(cfg.epochs * len(train) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / n_steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, t0 = 0, time.time()
    model.train()
    while step < n_steps:
        order = torch.randperm(len(train), generator=gen).tolist()
        for idx in batched(order, cfg.batch_size):
            value = loss(model, tok, [train[i] for i in idx], device)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(), sched.step(), opt.zero_grad()
            step += 1
            if step % 20 == 0 or step == n_steps:
                log.info("reward model step %d/%d loss %.4f (%.0fs)", step, n_steps, value.item(), time.time() - t0)
            if step == n_steps:
                break

    model.eval()
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    acc = accuracy(ClassifierReward(str(out), score_cfg, device), held)
    metrics = {"heldout_accuracy": acc, "n_train": len(train), "n_heldout": len(held),
               "steps": n_steps, "train_seconds": round(time.time() - t0, 1)}
    log.info("reward model held-out accuracy %.3f on %d examples", acc, len(held))
    return metrics


# --------------------------------------------------------------------------- checkpoints
@dataclass
class Checkpoints:
    """Resumable training: a folder beside the step's output (Snakemake deletes an interrupted
    job's output before rerunning it, not this folder), tagged with the run's fingerprint so that a
    rerun with other settings starts afresh instead of resuming another run's state."""

    dir: Path
    fingerprint: str = ""

    def claim(self) -> None:
        """Drop checkpoints left by other settings and tag the folder as this run's (once, before
        any training process starts)."""
        tag = self.dir / "fingerprint.txt"
        if self.dir.exists() and (not tag.exists() or tag.read_text() != self.fingerprint):
            log.info("checkpoints in %s are from other settings: starting afresh", self.dir)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        tag.write_text(self.fingerprint)

    def last(self) -> str | None:
        """This run's last complete checkpoint, if an earlier attempt left one."""
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(self.dir)) if self.dir.is_dir() else None
        if last:
            log.info("resuming from %s", last)
        return last

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class KillAfterSave(TrainerCallback):
    """Fault injection for the preemption test: SIGKILL this process (no cleanup, as a node loss or
    `scancel` would) right after the checkpoint of step $RCFD_KILL_AFTER_STEP is saved."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class StallWarning(TrainerCallback):
    """Warn (once) when RLOO has stopped learning: for `patience` logged steps in a row every
    prompt's samples got the same reward, so every advantage is zero. Two-reward RCfD reached it
    with every sample empty (results/ablations/summaries_alpha_batch), and RLOO cannot leave that
    state by itself."""

    def __init__(self, patience: int = 3):
        self.patience, self.streak, self.warned = patience, 0, False

    def on_log(self, args, state, control, logs=None, **kwargs):
        stalled = (logs or {}).get("frac_reward_zero_std") == 1.0
        self.streak = self.streak + 1 if stalled else 0
        if self.streak >= self.patience and not self.warned:
            self.warned = True
            log.warning("RL stalled at step %d: for %d logged steps every prompt's samples got the same "
                        "reward, so every RLOO advantage is zero (identical, e.g. empty, answers?)",
                        state.global_step, self.streak)


def _callbacks() -> list:
    step = os.environ.get("RCFD_KILL_AFTER_STEP")
    return [KillAfterSave(int(step))] if step else []


def _checkpoints(ckpt: Checkpoints | None, out: Path) -> Checkpoints:
    """The step's checkpoints (claimed by the caller), or an unnamed run's beside `out`."""
    if ckpt is None:
        ckpt = Checkpoints(out.with_name("checkpoints"))
        ckpt.claim()
    return ckpt


def _fit(trainer, ckpt: Checkpoints, save) -> list[dict]:
    """Train (resuming from this run's last checkpoint, if any), `save(trainer)` the policy, then
    drop the checkpoints (the main process, once every process is done)."""
    trainer.train(resume_from_checkpoint=ckpt.last())
    save(trainer)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        ckpt.clear()
    return trainer.state.log_history


# --------------------------------------------------------------------------- RL (RLOO)
@dataclass
class LoraTraining:
    """What every LoRA policy-training step shares."""

    lora: LoraSettings = field(default_factory=LoraSettings)
    gradient_checkpointing: bool = True  # TRL's default: recompute activations in backward, memory for time
    # CPU only (GPUs always train in bf16): autocast the forward and backward matmuls to bf16. On CPUs
    # with AVX512-BF16 or AMX it runs a LoRA step of SmolLM2-135M 1.7x faster; elsewhere it is slower.
    cpu_bf16: bool = False
    checkpoint_steps: int = 0  # save a resumable checkpoint every N optimizer steps (0: never)
    processes: int = 1  # data-parallel processes, one per GPU (rcfd.distributed); batches stay global
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if isinstance(self.lora, dict):  # from the JSON params
            self.lora = LoraSettings(**self.lora)


@dataclass
class RLConfig(LoraTraining):
    steps: int = 100
    prompts_per_step: int = 8
    num_generations: int = 2  # RLOO's leave-one-out baseline needs >= 2
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5  # paper: Adam lr 5e-5
    epsilon: float = 0.3  # paper: PPO clip 0.3
    num_iterations: int = 1
    normalize_advantages: bool = True  # paper: rewards normalised by batch mean and std
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    max_grad_norm: float = 1.0
    logging_steps: int = 1
    # On CUDA, decode with a static KV cache and a torch.compile'd forward replayed as CUDA graphs:
    # decoding a batch is launch-bound (hundreds of small kernels per token, LoRA's included), and
    # TRL turns transformers' compiled decoding off. The cache is sized once for the longest prompt,
    # so every step reuses one compiled graph.
    compile_generation: bool = True
    # "rloo" (TRL's RLOOTrainer) or "ppo" (rcfd.ppo: value head, GAE; num_iterations = PPO epochs)
    algorithm: str = "rloo"
    gamma: float = 1.0  # PPO only: discount
    gae_lambda: float = 0.95  # PPO only: GAE lambda (TRL's former PPO default)
    value_coef: float = 0.1  # PPO only: weight of the value loss (TRL's former default)
    value_clip: float = 0.2  # PPO only: clip range of the value update (TRL's former default)
    minibatches: int = 1  # PPO only: minibatches per epoch over one rollout

    def __post_init__(self):
        super().__post_init__()
        if self.algorithm not in ("rloo", "ppo"):
            raise InputError(f"config key 'algorithm': {self.algorithm!r}, expected 'rloo' or 'ppo'")
        if self.algorithm == "ppo" and self.cpu_bf16:
            raise InputError("config key 'rl.cpu_bf16': algorithm 'ppo' (rcfd.ppo's own loop) does not support it; use 'rloo'")


def compiled_generation(cfg: RLConfig, device: str) -> bool:
    return cfg.compile_generation and device.startswith("cuda")


def per_process(batch: int, key: str) -> int:
    """A global batch split over the data-parallel processes (the config's batches are global, so a
    run keeps its batch whatever the number of GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if batch % world:
        raise InputError(f"config key '{key}': its batch of {batch} does not split over {world} processes")
    return batch // world


def _trainer_common(cfg, ckpt: Checkpoints, device: str) -> dict:
    return dict(
        output_dir=str(ckpt.dir), report_to="none", seed=cfg.seed, data_seed=cfg.seed,
        save_strategy="steps" if cfg.checkpoint_steps else "no", save_steps=cfg.checkpoint_steps or 500,
        save_total_limit=2,  # the last two: a kill while saving the newest leaves the one before
        gradient_checkpointing=cfg.gradient_checkpointing, logging_steps=cfg.logging_steps,
        bf16=device.startswith("cuda") or cfg.cpu_bf16, use_cpu=not device.startswith("cuda"), dataloader_num_workers=0,
        disable_tqdm=False,
    )


def train_rl(policy: str, rows: list[dict], objective: str, beta: float, rm, cfg: RLConfig, out: str | Path,
             alpha: float = 0.0, ckpt: Checkpoints | None = None) -> list[dict]:
    """Train a LoRA policy with RLOO (or PPO, `cfg.algorithm`) on `objective` ("reward", "rcfd" or
    "rcfd2", see rewards.make_reward_func), KL weight `beta` and length-reward weight `alpha`."""
    from transformers import AutoModelForCausalLM

    seed_everything(cfg.seed)
    out = Path(out)
    ckpt = _checkpoints(ckpt, out)
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=pick_dtype(pick_device(cfg.device)))
    if cfg.algorithm == "ppo":
        from .ppo import train_ppo

        return train_ppo(model, load_tokenizer(policy), rows, objective, beta, rm, cfg, ckpt, alpha, out)
    trainer = rl_trainer(model, load_tokenizer(policy), rows, objective, beta, rm, cfg, ckpt, alpha)
    return _fit(trainer, ckpt, lambda t: t.save_model(str(out)))


def rl_trainer(model, tok, rows: list[dict], objective: str, beta: float, rm, cfg: RLConfig, ckpt: Checkpoints,
               alpha: float = 0.0):
    """The RLOO trainer of `train_rl`, for a model already in memory (the benchmark times it)."""
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    device = pick_device(cfg.device)
    columns = {"prompt": [r["prompt"] for r in rows]}
    if objective in ("rcfd", "rcfd2"):
        columns["demo_reward"] = [float(r["demo_reward"]) for r in rows]
    if objective == "rcfd2":
        columns["demo_tokens"] = [int(r["demo_tokens"]) for r in rows]
    compiled = {}
    if compiled_generation(cfg, device):
        longest = max(len(ids) for ids in tok(columns["prompt"])["input_ids"])
        compiled = dict(cache_implementation="static", generation_kwargs={"max_cache_len": longest + cfg.max_new_tokens})
    args = RLOOConfig(
        **_trainer_common(cfg, ckpt, device),
        max_steps=cfg.steps,
        per_device_train_batch_size=per_process(cfg.prompts_per_step * cfg.num_generations, "rl.prompts_per_step"),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_generations=cfg.num_generations,
        learning_rate=cfg.learning_rate,
        beta=beta,
        epsilon=cfg.epsilon,
        num_iterations=cfg.num_iterations,
        normalize_advantages=cfg.normalize_advantages,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type="constant",
        **compiled,
    )
    trainer = RLOOTrainer(
        model=model, reward_funcs=make_reward_func(objective, rm, alpha), args=args,
        train_dataset=Dataset.from_dict(columns), processing_class=tok,
        peft_config=cfg.lora.peft_config(), callbacks=[StallWarning(), *_callbacks()],
    )
    trainer.generation_config.disable_compile = not compiled
    return trainer


# --------------------------------------------------------------------------- SFT
@dataclass
class SFTStepConfig(LoraTraining):
    steps: int = 100
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 128
    logging_steps: int = 5


def train_sft(policy: str, rows: list[dict], cfg: SFTStepConfig, out: str | Path,
              ckpt: Checkpoints | None = None) -> list[dict]:
    """Supervised fine-tuning on the demonstrations (loss on the demonstration tokens only)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(out)
    ckpt = _checkpoints(ckpt, out)
    tok = load_tokenizer(policy, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=pick_dtype(device))
    data = Dataset.from_dict({"prompt": [r["prompt"] for r in rows], "completion": [r["demo"] for r in rows]})
    args = SFTConfig(
        **_trainer_common(cfg, ckpt, device), max_steps=cfg.steps, per_device_train_batch_size=per_process(cfg.batch_size, "batch_size"),
        learning_rate=cfg.learning_rate, max_length=cfg.max_length, completion_only_loss=True,
        lr_scheduler_type="constant",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                         peft_config=cfg.lora.peft_config(), callbacks=_callbacks())
    return _fit(trainer, ckpt, lambda t: t.save_model(str(out)))


# --------------------------------------------------------------------------- DPO
@dataclass
class DPOStepConfig(LoraTraining):
    steps: int = 100  # paper: 4000
    early_steps: int = 20  # paper: the checkpoint at step 200
    beta: float = 0.1  # paper: 0.1
    batch_size: int = 8
    learning_rate: float = 1e-5  # paper: 1e-5
    max_length: int = 256
    logging_steps: int = 5


def train_dpo(policy: str, sft_adapter: str | Path, rows: list[dict], cfg: DPOStepConfig, steps: int,
              out: str | Path, ckpt: Checkpoints | None = None) -> list[dict]:
    """DPO (TRL DPOTrainer) from the SFT policy on (prompt, demonstration, rejected) pairs; the
    reference model is the SFT policy. Saves the merged model (SFT + DPO) as a full model folder."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from .models import load_policy

    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(out)
    ckpt = _checkpoints(ckpt, out)
    tok = load_tokenizer(policy)
    model = load_policy(policy, sft_adapter, device).train()
    data = Dataset.from_dict({"prompt": [r["prompt"] for r in rows], "chosen": [r["demo"] for r in rows],
                              "rejected": [r["rejected"] for r in rows]})
    args = DPOConfig(
        **_trainer_common(cfg, ckpt, device), max_steps=steps, per_device_train_batch_size=per_process(cfg.batch_size, "batch_size"),
        learning_rate=cfg.learning_rate, beta=cfg.beta, max_length=cfg.max_length, lr_scheduler_type="constant",
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                         peft_config=cfg.lora.peft_config(), callbacks=_callbacks())

    def save_merged(t):
        if t.is_world_process_zero():
            t.accelerator.unwrap_model(t.model).merge_and_unload().save_pretrained(out)
            tok.save_pretrained(out)

    return _fit(trainer, ckpt, save_merged)


def write_log_history(history: list[dict], path: str | Path) -> None:
    keys = sorted({k for h in history for k in h})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
