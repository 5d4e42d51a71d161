"""RL on the paper's objectives (R, R_beta, R_alpha, RCfD) with TRL's RLOO trainer.

RLOO samples `num_generations` completions per prompt, scores them with the reward callable
(rewards.make_reward_func), adds -beta * KL(pi || pi_0) to the reward (the paper's R_beta; beta = 0
for R and RCfD), normalises per batch and takes a clipped policy-gradient step on LoRA weights.
PPO with a value head, the paper's optimiser, is rcfd/train/ppo.py (a PPOConfig selects it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback

from ..config import KL_SAMPLING_NEEDS
from ..models import load_tokenizer
from ..sampling import SamplingConfig, sampling_config, share_prefill
from ..utils import InputError, cpu_bf16_in_use, from_params, log, pick_device, pick_dtype, seed_everything, write_json
from .checkpoints import Checkpoints, Snapshots, fault_injection, fit
from .common import LoraTraining, per_process, trainer_args
from .trl_patches import LossLogprobs, MergedGeneration, SamplingContext, SharedPrefixLoss, StepPhases, check_trl_version


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
    # "score" (the paper): an empty answer is scored like any other; "worst": it gets the batch's
    # worst reward (rewards.make_reward_func), a guard against collapsing to empty answers
    empty_completion: str = "score"
    # The sampling policy's log-probabilities in the ratio of the clipped loss: "recompute" (TRL: a
    # no-grad forward after sampling) or "loss" (the loss forward's own, detached: ratio exactly 1).
    # "loss" applies at beta = 0 and one iteration, where the sampling policy is the trained one: it
    # saves a forward pass, and with LoRA dropout the recomputed pass draws other masks, which clipped
    # ~16% of the samples of a step (docs/time.md). Elsewhere "recompute" is used.
    old_logprobs: str = "loss"
    # Sample with the LoRA adapter merged into the base weights (trl_patches.MergedGeneration): a
    # decoded token then costs the base model's matmuls only (off: the benchmark's plain-TRL side)
    merged_generation: bool = True
    # Where the KL penalty's (beta > 0) policy log-probabilities come from: "recompute" (TRL: a no-grad
    # forward after sampling) or "sampling" (each sampled token's log-probability under the distribution
    # it was drawn from, recorded at the draw: the sampling policy's, without that forward; the
    # ratio's then come from the loss forward, as `old_logprobs: loss`). "sampling" needs top_p = 1
    # (the draw's distribution is then the policy's at `temperature`), old_logprobs "loss" and one
    # iteration (trl_patches.LossLogprobs); it applies at beta > 0 only (rcfd.config and rl_trainer check that
    # a task with a beta > 0 has them).
    kl_logprobs: str = "sampling"
    # how tokens are sampled (config `<task>.sampling`, shared with generation): rcfd.sampling
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    # keep the adapter of these steps in <policy>/snapshots/step<N> (the workflow sets them for the
    # gold-vs-proxy curve's methods, config `<task>.gold_vs_proxy`)
    snapshot_steps: list[int] = field(default_factory=list)

    def __post_init__(self):
        super().__post_init__()
        from ..rewards import EMPTY_COMPLETION

        self.sampling = sampling_config(self.sampling)

        # refused when the config is read, before any model loads
        for key, allowed in (("empty_completion", EMPTY_COMPLETION), ("old_logprobs", ("recompute", "loss")),
                             ("kl_logprobs", ("recompute", "sampling"))):
            if getattr(self, key) not in allowed:
                raise InputError(f"config key 'rl.{key}' {getattr(self, key)!r}: expected one of {allowed}")
        bad = [s for s in self.snapshot_steps if not 0 < s < self.steps]
        if bad:
            raise InputError(f"config key 'rl.snapshot_steps' {bad}: a snapshot step must be between 1 and "
                             f"rl.steps - 1 ({self.steps - 1}; the last step is the trained policy)")


# what rcfd.train.ppo's own loop does not do (it samples with plain `generate` and trains in fp32):
# PPOConfig's defaults turn them off, and rl_config drops a task's values of them for PPO
PPO_OFF = {"cpu_bf16": False, "merged_generation": False, "kl_logprobs": "recompute"}
PPO_SAMPLING_OFF = {"cpu_bf16": False, "attention": "", "inverse_cdf": False}


@dataclass
class PPOConfig(RLConfig):
    """rcfd.train.ppo's settings: RLOO's plus the value head's (config `rl.ppo`); num_iterations = PPO epochs."""

    gamma: float = 1.0  # discount
    gae_lambda: float = 0.95  # GAE lambda (TRL's former PPO default)
    value_coef: float = 0.1  # weight of the value loss (TRL's former default)
    value_clip: float = 0.2  # clip range of the value update (TRL's former default)
    minibatches: int = 1  # minibatches per epoch over one rollout
    cpu_bf16: bool = False
    merged_generation: bool = False
    kl_logprobs: str = "recompute"
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(**PPO_SAMPLING_OFF))

    def __post_init__(self):
        super().__post_init__()
        for where, settings, off in (("rl", self, PPO_OFF), ("sampling", self.sampling, PPO_SAMPLING_OFF)):
            for key, value in off.items():
                if getattr(settings, key) != value:
                    raise InputError(f"config key '{where}.{key}': PPO (rcfd.train.ppo's own loop) does not support "
                                     f"{getattr(settings, key)!r}; use RLOO")


def rl_config(section: dict, algorithm: str) -> RLConfig:
    """The RL settings (config `<task>.rl`, with the task's `sampling`) for `algorithm`: RLOO's, or
    PPO's with `rl.ppo` on top and the settings its loop does not have dropped (so that one task
    config serves both optimisers), said in the log."""
    section = dict(section)
    ppo = section.pop("ppo", {})
    if algorithm != "ppo":
        return from_params(RLConfig, section, "train.rl")
    sampling = dict(section.pop("sampling", {}))
    unused = {k: section.pop(k) for k in PPO_OFF if k in section}
    unused |= {f"sampling.{k}": sampling.pop(k) for k in PPO_SAMPLING_OFF if k in sampling}
    if unused:
        log.info("PPO: RLOO-only settings not used: %s", unused)
    return from_params(PPOConfig, {**section, **ppo, "sampling": {**PPO_SAMPLING_OFF, **sampling}}, "train.rl")


def compiled_generation(cfg: RLConfig, device: str) -> bool:
    return cfg.compile_generation and device.startswith("cuda")


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


def train_rl(policy: str, rows: list[dict], reward_func, beta: float, cfg: RLConfig, out: str | Path,
             ckpt: Checkpoints | None = None) -> list[dict]:
    """Train a LoRA policy on `reward_func` (TRL's reward-function interface; the paper's objectives
    are rewards.make_reward_func) with KL weight `beta`: RLOO, or PPO when `cfg` is a PPOConfig."""
    from transformers import AutoModelForCausalLM

    seed_everything(cfg.seed)
    out = Path(out)
    ckpt = ckpt or Checkpoints.beside(out)
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=pick_dtype(pick_device(cfg.device)))
    if isinstance(cfg, PPOConfig):
        from .ppo import train_ppo

        return train_ppo(model, load_tokenizer(policy), rows, reward_func, beta, cfg, ckpt, out)
    trainer = rl_trainer(model, load_tokenizer(policy), rows, reward_func, beta, cfg, ckpt)
    record_roofline(trainer.model, cfg, out)
    if cfg.snapshot_steps:
        trainer.add_callback(Snapshots(ckpt, cfg.snapshot_steps))
    return fit(trainer, ckpt, lambda t: t.save_model(str(out)), out)


def record_roofline(model, cfg: RLConfig, out: Path) -> None:
    """policy/roofline.json: this machine's GEMM throughput and memory bandwidth, measured at the job's
    thread count, with the run's weights, batch and dtypes (rcfd.train.floors.roofline), from which
    time_breakdown's rl_step_breakdown gives each phase's floor on the machine that ran it."""
    from . import distributed
    from . import floors as F

    if not distributed.is_main():
        return
    device = pick_device(cfg.device)
    cuda = device.startswith("cuda")
    sampling = "bfloat16" if cuda or cpu_bf16_in_use(cfg.sampling.cpu_bf16, device) else "float32"
    train = "bfloat16" if cuda or cpu_bf16_in_use(cfg.cpu_bf16, device) else "float32"
    per_step = per_process(cfg.prompts_per_step, "rl.prompts_per_step") * cfg.gradient_accumulation_steps
    machine = F.measure_machine(device)
    out.mkdir(parents=True, exist_ok=True)
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    write_json(out / "roofline.json", F.roofline(machine, F.count_weights(model), config, per_step,
                                                 per_step * cfg.num_generations, sampling, cfg.merged_generation, train))


def reward_columns(rows: list[dict]) -> dict[str, list]:
    """The training data TRL hands the reward function: the prompts, and each demonstration's
    reward and length where the data has them (RCfD's targets)."""
    columns = {"prompt": [r["prompt"] for r in rows]}
    for key, cast in (("demo_reward", float), ("demo_tokens", int)):
        if all(key in r for r in rows):
            columns[key] = [cast(r[key]) for r in rows]
    return columns


def shuffle_targets(rows: list[dict], seed: int) -> list[dict]:
    """The control rcfd_shuffled: every prompt gets another prompt's demonstration reward (a
    seeded permutation), so RCfD's target keeps its distribution but loses its link to the prompt."""
    import random

    targets = [r["demo_reward"] for r in rows]
    random.Random(seed).shuffle(targets)
    return [dict(r, demo_reward=t) for r, t in zip(rows, targets)]


def rl_trainer(model, tok, rows: list[dict], reward_func, beta: float, cfg: RLConfig, ckpt: Checkpoints):
    """The RLOO trainer of `train_rl`, for a model already in memory (the benchmark times it)."""
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    device = pick_device(cfg.device)
    columns = reward_columns(rows)
    compiled = {}
    if compiled_generation(cfg, device):
        longest = max(len(ids) for ids in tok(columns["prompt"])["input_ids"])
        compiled = dict(cache_implementation="static", generation_kwargs={"max_cache_len": longest + cfg.max_new_tokens})
    args = RLOOConfig(
        **trainer_args(cfg, ckpt, device),
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
        model=model, reward_funcs=reward_func, args=args,
        train_dataset=Dataset.from_dict(columns), processing_class=tok,
        peft_config=cfg.lora.peft_config(), callbacks=[StallWarning(), *fault_injection()],
    )
    trainer.generation_config.disable_compile = not compiled
    check_trl_version(trainer)
    if cfg.sampling.shared_prefill:
        if not compiled:
            share_prefill(trainer.model)
        SharedPrefixLoss(trainer)  # first: LossLogprobs wraps this forward
    on_policy = cfg.num_iterations == 1 and args.steps_per_generation == args.gradient_accumulation_steps
    kl_sampled = beta > 0 and cfg.kl_logprobs == "sampling"
    if kl_sampled and (cfg.top_p != 1 or cfg.old_logprobs != "loss" or cfg.num_iterations != 1):
        raise InputError(KL_SAMPLING_NEEDS)
    if kl_sampled and not on_policy:
        raise InputError("config key 'rl.kl_logprobs' 'sampling': needs one generation per optimizer step")
    sampling = SamplingContext(trainer, device, cfg.sampling, record=kl_sampled)  # first: merging is outside it
    if cfg.old_logprobs == "loss" and on_policy and (beta == 0 or kl_sampled):
        LossLogprobs(trainer, sampling if kl_sampled else None)
    if cfg.merged_generation:
        MergedGeneration(trainer)
    trainer.add_callback(StepPhases(trainer))  # after the others: it times the skipped pass and the merging too
    return trainer


