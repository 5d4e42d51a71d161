"""What the RL step changes in TRL's RLOOTrainer, each by wrapping one trainer instance's private
methods (`_generate`, `_get_per_token_logps_and_entropies`, `_compute_loss`, and the accelerator's
`backward` for timing). Private methods change between TRL releases without notice: these were
written against TRL_VERSION, and check_trl_version refuses another before a run starts.

rcfd.train.rl.rl_trainer applies them in order: SharedPrefixLoss, SamplingContext, LossLogprobs,
MergedGeneration, then StepPhases (which times what the others do).
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch
from transformers import TrainerCallback

from ..sampling import SamplingConfig, prefix_cache, sampling
from ..utils import InputError
from .phases import PHASES

TRL_VERSION = "1.16.0"  # the release whose RLOOTrainer internals these wrap (pyproject.toml pins it)
WRAPPED = ("_generate", "_get_per_token_logps_and_entropies", "_compute_loss", "_calculate_rewards")


def check_trl_version(trainer) -> None:
    """One line naming the TRL release if it is not the one these wrappers were written for, or if
    a wrapped method is gone."""
    import trl

    if trl.__version__ != TRL_VERSION:
        raise InputError(f"trl {trl.__version__}: rcfd.train.trl_patches wraps RLOOTrainer internals of trl "
                         f"{TRL_VERSION}; install that version (pyproject.toml) or re-check the wrappers")
    missing = [m for m in WRAPPED if not callable(getattr(trainer, m, None))]
    if missing:
        raise InputError(f"trl {trl.__version__}: RLOOTrainer lacks {missing}, which rcfd.train.trl_patches wraps")


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
    """`sampling.shared_prefill` in the loss: TRL's log-probability forward (with gradients for the
    loss, without for the sampling policy's and the reference's) runs each distinct prompt once.
    A prompt's keys and values do not depend on its completions (causal attention), so the prompt
    up to its last token runs on the distinct prompts, its KV cache is copied to their samples
    (`index_select`: differentiable, the samples' gradients add up in the shared prefix) and the
    last prompt token plus the completion run on every row: the same positions (TRL's, 0..L-1, as
    the cache continues them) and, in exact arithmetic, the same log-probabilities and gradient.
    Falls back to TRL's forward when no prompt repeats, under activation recomputation (which runs
    without a cache) and in data-parallel training (rl.processes > 1). Wraps this trainer's
    `_get_per_token_logps_and_entropies`."""

    def __init__(self, trainer):
        logprobs = trainer._get_per_token_logps_and_entropies

        def shared(model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False,
                   compute_aux_loss=False, **multimodal):
            def trl():
                return logprobs(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                                compute_aux_loss, **multimodal)

            prefix = input_ids.size(1) - logits_to_keep - 1  # every prompt token but the last
            other_inputs = compute_aux_loss or any(v is not None for v in multimodal.values())
            # a data-parallel wrapper (DDP) has no `config`, and its gradient sync expects one forward per backward
            wrapped = not hasattr(model, "config")
            if prefix < 1 or other_inputs or wrapped or getattr(model, "is_gradient_checkpointing", False):
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
    """How TRL's sampling runs, apart from the loss: as config `<task>.sampling` says
    (rcfd.sampling.sampling: TRL samples in fp32 on CPU, its autocast covers the loss only; here under
    bf16 autocast with each weight cast once per call, with the sampling attention and token draws)
    and, with `record`, each drawn token's log-probability for RLConfig.kl_logprobs = "sampling"
    (rcfd.sampling.token_draws; take_logprobs). Wraps this trainer's `_generate`; under
    merged_generation the merged weights are the ones cast."""

    def __init__(self, trainer, device: str, cfg: SamplingConfig, record: bool = False):
        generate = trainer._generate
        self.drawn = None

        def sample(*args, **kwargs):
            draws = [] if record else None
            with sampling(trainer.model, cfg, device, draws):
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
