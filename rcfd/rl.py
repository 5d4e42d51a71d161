"""RL on the paper's objectives (R, R_beta, R_alpha, RCfD) with TRL's RLOO trainer.

RLOO samples `num_generations` completions per prompt, scores them with the reward callable
(rewards.make_reward_func), adds -beta * KL(pi || pi_0) to the reward (the paper's R_beta; beta = 0
for R and RCfD), normalises per batch and takes a clipped policy-gradient step on LoRA weights.
PPO with a value head, the paper's optimiser, is rcfd/ppo.py (a PPOConfig selects it).
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback

from .checkpoints import Checkpoints, fault_injection, fit
from .generate import prefix_cache, share_prefill
from .models import load_tokenizer
from .train import LoraTraining, per_process, trainer_args
from .utils import (
    InputError,
    cpu_autocast_decoding,
    log,
    pick_device,
    pick_dtype,
    sampling_attention,
    seed_everything,
    token_draws,
)


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
    # Sample with the LoRA adapter merged into the base weights (rl.MergedGeneration): a decoded token
    # then costs the base model's matmuls only. Off by default; config.yaml turns it on for the CPU runs.
    merged_generation: bool = False
    # CPU only: sample under bf16 autocast (the precision of the loss's forward under cpu_bf16, and of
    # a GPU run), each weight cast once per sampling call (rl.SamplingContext). Off: fp32 sampling.
    cpu_bf16_sampling: bool = False
    # the attention implementation while sampling ("eager", "grouped", "sdpa"; "": the model's), utils.sampling_attention
    sampling_attention: str = ""
    # CPU only: draw each sampled token by the inverse CDF (utils.token_draws), not by
    # torch.multinomial's exponential per vocabulary entry: the same distribution, other random numbers
    inverse_cdf_sampling: bool = False
    # Where the KL penalty's (beta > 0) policy log-probabilities come from: "recompute" (TRL: a no-grad
    # forward after sampling) or "sampling" (each sampled token's log-probability under the distribution
    # it was drawn from, recorded at the draw: the sampling policy's, without that forward; the
    # ratio's then come from the loss forward, as `old_logprobs: loss`). "sampling" needs top_p = 1
    # (the draw's distribution is then the policy's at `temperature`), old_logprobs "loss" and one
    # iteration (rl.LossLogprobs).
    kl_logprobs: str = "recompute"
    # Run each prompt's forward pass once for its num_generations samples, in sampling
    # (generate.prefilled; not with the compiled CUDA decoding's static cache) and in the loss's
    # forward and backward (SharedPrefixLoss): the same samples and gradient up to rounding, for
    # less work at long prompts (docs/configuration.md). Off by default; config.yaml turns it on for the CPU runs.
    shared_prefill: bool = False

    def __post_init__(self):
        super().__post_init__()
        from .rewards import EMPTY_COMPLETION

        # refused when the config is read, before any model loads
        for key, allowed in (("empty_completion", EMPTY_COMPLETION), ("old_logprobs", ("recompute", "loss")),
                             ("kl_logprobs", ("recompute", "sampling")),
                             ("sampling_attention", ("", "eager", "grouped", "sdpa"))):
            if getattr(self, key) not in allowed:
                raise InputError(f"config key 'rl.{key}' {getattr(self, key)!r}: expected one of {allowed}")
        if self.kl_logprobs == "sampling" and (self.top_p != 1 or self.old_logprobs != "loss" or self.num_iterations != 1):
            raise InputError("config key 'rl.kl_logprobs' 'sampling': needs rl.top_p 1, rl.old_logprobs 'loss' and "
                             "rl.num_iterations 1 (the draw's distribution is then the policy the loss trains)")


@dataclass
class PPOConfig(RLConfig):
    """rcfd.ppo's settings: RLOO's plus the value head's (config `rl.ppo`); num_iterations = PPO epochs."""

    gamma: float = 1.0  # discount
    gae_lambda: float = 0.95  # GAE lambda (TRL's former PPO default)
    value_coef: float = 0.1  # weight of the value loss (TRL's former default)
    value_clip: float = 0.2  # clip range of the value update (TRL's former default)
    minibatches: int = 1  # minibatches per epoch over one rollout

    def __post_init__(self):
        super().__post_init__()
        for key in ("cpu_bf16", "merged_generation", "cpu_bf16_sampling", "sampling_attention", "inverse_cdf_sampling"):
            if getattr(self, key):
                raise InputError(f"config key 'rl.{key}': PPO (rcfd.ppo's own loop) does not support it; use RLOO")
        if self.kl_logprobs != "recompute":
            raise InputError("config key 'rl.kl_logprobs': PPO (rcfd.ppo's own loop) does not support it; use RLOO")


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


# the phases of an RLOO step that StepPhases times, in the order they run
PHASES = ("generate", "reward", "logprobs_no_grad", "train_forward", "backward", "optimizer")


class StepPhases(TrainerCallback):
    """Where an RLOO step's wall time goes, logged every step as `time/<phase>` seconds beside
    TRL's `step_time` (which covers all but the optimizer step): `generate` (sampling the
    completions), `reward` (the reward callable: RM scoring), `logprobs_no_grad` (TRL's no-grad
    forward passes: the sampling policy's log-probabilities, and the reference model's when
    beta > 0), `train_forward` and `backward` (the policy-gradient loss), `optimizer` (clipping and
    the AdamW step). What step_time holds beyond the first five is bookkeeping (tokenising,
    advantages, metrics). It wraps the trainer's own methods on this one instance. Beside the
    seconds it logs `forwards/<phase>`: how many times the policy's forward ran in that phase (a
    count, for what a setting skips, e.g. `old_logprobs: loss` leaves logprobs_no_grad at 0)."""

    def __init__(self, trainer):
        self.trainer, self.seconds, self.t_optimizer = trainer, defaultdict(float), None
        self.forwards, self.current = defaultdict(int), []
        trainer.model.register_forward_pre_hook(self._count_forward)
        self._time(trainer, "_generate", lambda: "generate")
        self._time(trainer, "_calculate_rewards", lambda: "reward")
        self._time(trainer, "_get_per_token_logps_and_entropies",
                   lambda: "train_forward" if torch.is_grad_enabled() else "logprobs_no_grad")
        self._time(trainer.accelerator, "backward", lambda: "backward")

    def _time(self, owner, method: str, phase):
        original = getattr(owner, method)

        def timed(*args, **kwargs):
            with self.phase(phase()):
                return original(*args, **kwargs)

        setattr(owner, method, timed)

    @contextmanager
    def phase(self, name: str):
        t0 = time.perf_counter()
        self.current.append(name)
        try:
            yield
        finally:
            self.current.pop()
            self.seconds[name] += time.perf_counter() - t0

    def _count_forward(self, module, args):
        if self.current:
            self.forwards[self.current[-1]] += 1

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.t_optimizer = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.seconds["optimizer"] += time.perf_counter() - self.t_optimizer

    def on_step_end(self, args, state, control, **kwargs):
        # TRL averages its per-step metrics over each logging interval, as it does step_time
        for name in PHASES:
            self.trainer._metrics["train"][f"time/{name}"].append(self.seconds.pop(name, 0.0))
            self.trainer._metrics["train"][f"forwards/{name}"].append(self.forwards.pop(name, 0))


class LossLogprobs:
    """RLConfig.old_logprobs = "loss": the sampling policy's log-probabilities in the ratio are taken
    from the loss forward, detached, instead of TRL's no-grad forward after sampling. That forward
    is skipped: at beta = 0 it returns zeros, which nothing reads (the loss overwrites them first);
    at beta > 0 (RLConfig.kl_logprobs = "sampling") it returns the log-probabilities recorded at
    each draw (`sampling`, a SamplingContext that records them), which the KL penalty reads. Other
    no-grad forwards (the reference's) run as TRL's. Wraps the trainer's own methods on this one
    instance."""

    def __init__(self, trainer, sampling: SamplingContext | None = None):
        self.inputs = None
        logprobs, compute_loss = trainer._get_per_token_logps_and_entropies, trainer._compute_loss

        def loss_with_these_inputs(model, inputs):
            self.inputs = inputs
            return compute_loss(model, inputs)

        def logprobs_once(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
            if not torch.is_grad_enabled():
                if sampling is None:  # beta = 0: the recomputation after sampling, not needed
                    return torch.zeros(len(input_ids), logits_to_keep, device=input_ids.device), None, None
                drawn = sampling.take_logprobs()
                if drawn is not None:  # the first pass after sampling: the sampling policy's
                    if drawn.shape != (len(input_ids), logits_to_keep):
                        raise RuntimeError(f"rl.kl_logprobs 'sampling': {tuple(drawn.shape)} log-probabilities "
                                           f"recorded, {(len(input_ids), logits_to_keep)} completion tokens")
                    return drawn.to(input_ids.device), None, None
                return logprobs(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)  # the reference
            out = logprobs(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
            # _compute_loss reads inputs["old_logps"] right after this forward: ratio = exp(0) = 1
            self.inputs["old_logps"] = (out[0].detach() * self.inputs["completion_mask"]).sum(1)
            return out

        trainer._compute_loss = loss_with_these_inputs
        trainer._get_per_token_logps_and_entropies = logprobs_once


class SharedPrefixLoss:
    """RLConfig.shared_prefill in the loss: TRL's log-probability forward (with gradients for the
    loss, without for the sampling policy's and the reference's) runs each distinct prompt once.
    A prompt's keys and values do not depend on its completions (causal attention), so the prompt
    up to its last token runs on the distinct prompts, its KV cache is copied to their samples
    (`index_select`: differentiable, the samples' gradients add up in the shared prefix) and the
    last prompt token plus the completion run on every row: the same positions (TRL's, 0..L-1, as
    the cache continues them) and, in exact arithmetic, the same log-probabilities and gradient.
    Falls back to TRL's forward when no prompt repeats and under activation recomputation (which
    runs without a cache). Wraps this trainer's `_get_per_token_logps_and_entropies`."""

    def __init__(self, trainer):
        logprobs = trainer._get_per_token_logps_and_entropies

        def shared(model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False,
                   compute_aux_loss=False, **multimodal):
            def trl():
                return logprobs(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                                compute_aux_loss, **multimodal)

            prefix = input_ids.size(1) - logits_to_keep - 1  # every prompt token but the last
            other_inputs = compute_aux_loss or any(v is not None for v in multimodal.values())
            if prefix < 1 or other_inputs or getattr(model, "is_gradient_checkpointing", False):
                return trl()
            with trainer.accelerator.autocast():
                cache = prefix_cache(model, input_ids[:, :prefix], attention_mask[:, :prefix])
                if cache is None:  # no prompt repeats
                    return trl()
                rest = input_ids[:, prefix:]
                labels = rest.masked_fill(attention_mask[:, prefix:] == 0, -100)
                labels[:, 0] = -100  # the last prompt token: context, not scored
                out = model(input_ids=rest, attention_mask=attention_mask, past_key_values=cache, labels=labels,
                            fused_lm_head=True)
            entropy = out.entropy[:, -logits_to_keep:] if compute_entropy else None
            return out.log_probs[:, -logits_to_keep:], entropy, None

        trainer._get_per_token_logps_and_entropies = shared


class SamplingContext:
    """How TRL's sampling runs, apart from the loss: RLConfig.cpu_bf16_sampling (TRL samples in fp32
    on CPU, its autocast covers the loss only; here under bf16 autocast with each weight cast once
    per call, utils.cpu_autocast_decoding), RLConfig.sampling_attention (utils.sampling_attention),
    RLConfig.inverse_cdf_sampling and, with `record`, each drawn token's log-probability for
    RLConfig.kl_logprobs = "sampling" (utils.token_draws; take_logprobs). Wraps this trainer's
    `_generate`; under merged_generation the merged weights are the ones cast."""

    def __init__(self, trainer, device: str, bf16: bool, attention: str, inverse_cdf: bool = False,
                 record: bool = False):
        generate = trainer._generate
        self.drawn = None

        def sample(*args, **kwargs):
            draws = [] if record else None
            with cpu_autocast_decoding(trainer.model, bf16, device), sampling_attention(trainer.model, attention), \
                    token_draws(device, inverse_cdf, draws):
                out = generate(*args, **kwargs)
            if record:  # (rows, decoded tokens): one column per draw
                self.drawn = torch.cat(draws, 1) if draws else None
            return out

        trainer._generate = sample

    def take_logprobs(self) -> torch.Tensor | None:
        """The last sampling call's recorded log-probabilities, once (None after)."""
        drawn, self.drawn = self.drawn, None
        return drawn


class MergedGeneration:
    """RLConfig.merged_generation: sample with the LoRA adapter merged into the base weights, so a
    decoded token skips the adapter's two small matmuls per layer (decoding 8 x 80 tokens of
    SmolLM2-135M with r = 32 on one CPU thread: 1.16-1.26x faster, measured while the 2 cores were
    shared). Merging and unmerging round, so the frozen base weights are saved once (memory: one copy
    of the adapted layers' weights) and copied back after every generation, bit for bit. Sampling then
    applies no LoRA dropout (TRL samples in train mode, so unmerged it does). Wraps this trainer's
    `_generate`."""

    def __init__(self, trainer):
        from peft.tuners.lora import LoraLayer

        model = trainer.model
        self.layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        self.saved = [layer.get_base_layer().weight.detach().clone() for layer in self.layers]
        generate = trainer._generate

        def merged(*args, **kwargs):
            model.merge_adapter()
            try:
                return generate(*args, **kwargs)
            finally:
                model.unmerge_adapter()
                with torch.no_grad():
                    for layer, weight in zip(self.layers, self.saved):
                        layer.get_base_layer().weight.copy_(weight)

        trainer._generate = merged


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
    return fit(trainer, ckpt, lambda t: t.save_model(str(out)))


def reward_columns(rows: list[dict]) -> dict[str, list]:
    """The training data TRL hands the reward function: the prompts, and each demonstration's
    reward and length where the data has them (RCfD's targets)."""
    columns = {"prompt": [r["prompt"] for r in rows]}
    for key, cast in (("demo_reward", float), ("demo_tokens", int)):
        if all(key in r for r in rows):
            columns[key] = [cast(r[key]) for r in rows]
    return columns


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
    if cfg.shared_prefill:
        if not compiled:
            share_prefill(trainer.model)
        SharedPrefixLoss(trainer)  # first: LossLogprobs wraps this forward
    on_policy = cfg.num_iterations == 1 and args.steps_per_generation == args.gradient_accumulation_steps
    kl_sampled = beta > 0 and cfg.kl_logprobs == "sampling"
    if kl_sampled and not on_policy:
        raise InputError("config key 'rl.kl_logprobs' 'sampling': needs one generation per optimizer step")
    sampling = None
    if cfg.cpu_bf16_sampling or cfg.sampling_attention or cfg.inverse_cdf_sampling or kl_sampled:
        # first: merging is outside it
        sampling = SamplingContext(trainer, device, cfg.cpu_bf16_sampling, cfg.sampling_attention,
                                   cfg.inverse_cdf_sampling, record=kl_sampled)
    if cfg.old_logprobs == "loss" and on_policy and (beta == 0 or kl_sampled):
        LossLogprobs(trainer, sampling if kl_sampled else None)
    if cfg.merged_generation:
        MergedGeneration(trainer)
    trainer.add_callback(StepPhases(trainer))  # after the others: it times the skipped pass and the merging too
    return trainer


