"""PPO with a learned value head: the paper's optimiser (clip 0.3, rewards normalised per batch).

TRL dropped its PPO trainer in 1.13, so this is a small loop on the pieces the RLOO path uses: the
same reward callables (rewards.make_reward_func: R, R_alpha, RCfD, two-reward RCfD), the same LoRA
settings, data and checkpoint folder (checkpoints.Checkpoints). One step:

  1. rollout   `num_generations` completions for each of `prompts_per_step` prompts, sampled from
               the current policy;
  2. score     the objective's reward, whitened over the batch (`normalize_advantages`);
  3. rewards   per token, -beta * (log pi - log pi_ref) (R_beta's KL; pi_ref is the policy with its
               LoRA adapters switched off), plus the score at the completion's last token;
  4. GAE       advantages and returns from the value head's estimates (`gamma`, `gae_lambda`);
  5. update    `num_iterations` epochs over `minibatches` minibatches: clipped policy loss
               (`epsilon`) + `value_coef` * clipped value loss (`value_clip`), one AdamW step each.

The value head is a linear layer on the policy's last hidden state, zero-initialised and detached
(value gradients do not reach the policy's LoRA weights). With a randomly initialised head the
movie-review policies at beta = 0 drifted into word salad (its noise swamped the scores), whether
the head shared the trunk or not (README, "PPO next to RLOO").
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..rewards import whiten
from ..sampling import prefilled
from ..utils import InputError, batched, log, pick_device, seed_everything
from .checkpoints import KILL_DURING_SAVE_ENV, kill_if_due


# --------------------------------------------------------------------------- the PPO mathematics
def per_token_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor | None,
                      mask: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards, kl): r_t = -beta * kl_t, kl_t = log pi(y_t) - log pi_ref(y_t), plus the sequence's
    score at its last token (the paper's R_beta spread over tokens). Shapes (batch, tokens)."""
    kl = (logp - ref_logp) * mask if ref_logp is not None else torch.zeros_like(logp)
    rewards = -beta * kl
    last = mask.sum(1).long().clamp(min=1) - 1
    rewards[torch.arange(len(scores)), last] += scores
    return rewards * mask, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the completion tokens; the value after the last token
    is 0 (the episode ends). Returns (advantages, returns = advantages + values)."""
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(len(rewards), dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def ppo_losses(logp, old_logp, values, old_values, advantages, returns, mask, clip: float,
               value_clip: float) -> dict[str, torch.Tensor]:
    """The clipped surrogate policy loss and the clipped value loss (PPO, Schulman et al. 2017)."""
    ratio = torch.exp(logp - old_logp)
    policy = masked_mean(torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)), mask)
    clipped_values = old_values + (values - old_values).clamp(-value_clip, value_clip)
    value = 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped_values - returns) ** 2), mask)
    clipfrac = masked_mean(((ratio - 1).abs() > clip).float(), mask)
    return {"policy_loss": policy, "value_loss": value, "clipfrac": clipfrac}


# --------------------------------------------------------------------------- model pieces
class ValueHead(torch.nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        # zero: the first advantages are the discounted scores themselves, not a random critic's
        # noise (a random head on hidden states of norm >> 1 swamped the unit-variance scores, and
        # the beta = 0 policies drifted into word salad; README, "PPO next to RLOO")
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)


def logprobs_and_values(model, head: ValueHead | None, ids, attention, n_prompt: int):
    """Log-probabilities of the completion tokens ids[:, n_prompt:] and the value of the state before
    each of them (the value head on the hidden state that predicts the token, detached)."""
    out = model(input_ids=ids, attention_mask=attention, output_hidden_states=head is not None)
    logits = out.logits[:, n_prompt - 1:-1].float()
    logp = torch.gather(F.log_softmax(logits, -1), 2, ids[:, n_prompt:, None]).squeeze(-1)
    values = head(out.hidden_states[-1][:, n_prompt - 1:-1].detach()) if head is not None else None
    return logp, values


# --------------------------------------------------------------------------- the trainer
class PPOTrainer:
    def __init__(self, model, tok, rows: list[dict], reward_func, beta: float, cfg, ckpt):
        from peft import get_peft_model

        if cfg.processes != 1:
            raise InputError("config key 'rl.processes': PPO runs in one process (algorithm: ppo)")
        self.cfg, self.tok, self.rows, self.beta, self.ckpt = cfg, tok, rows, beta, ckpt
        self.device = pick_device(cfg.device)
        self.reward = reward_func
        self.model = get_peft_model(model.to(self.device), cfg.lora.peft_config())
        if cfg.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.enable_input_require_grads()
        self.head = ValueHead(model.config.hidden_size).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad] + list(self.head.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate)
        self.step, self.history = 0, []

    def prompts_for(self, step: int) -> list[dict]:
        """Step `step`'s prompts: the data walked in a seeded random order, a new order each epoch."""
        n, total = self.cfg.prompts_per_step, len(self.rows)
        picks = []
        for position in range(step * n, (step + 1) * n):
            epoch, i = divmod(position, total)
            order = torch.randperm(total, generator=torch.Generator().manual_seed(self.cfg.seed + epoch))
            picks.append(self.rows[order[i].item()])
        return picks

    @torch.no_grad()
    def rollout(self, batch: list[dict]) -> dict:
        """Sample, score and evaluate one batch: everything the update needs, fixed (no gradients)."""
        cfg, tok = self.cfg, self.tok
        rows = [r for r in batch for _ in range(cfg.num_generations)]
        enc = tok([r["prompt"] for r in rows], return_tensors="pt", padding=True).to(self.device)
        n_prompt = enc["input_ids"].shape[1]
        self.model.eval()
        inputs = prefilled(self.model, enc["input_ids"], enc["attention_mask"]) if cfg.sampling.shared_prefill else enc
        ids = self.model.generate(**inputs, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                                  max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)
        completion = ids[:, n_prompt:]
        # a completion is its tokens up to and including the first EOS (TRL's convention)
        is_eos = completion == tok.eos_token_id
        first_eos = torch.where(is_eos.any(1), is_eos.int().argmax(1), completion.shape[1])
        mask = (torch.arange(completion.shape[1], device=ids.device)[None] <= first_eos[:, None]).float()
        attention = torch.cat([enc["attention_mask"], mask.long()], 1)
        completion_ids = [c[m.bool()].tolist() for c, m in zip(completion.cpu(), mask.cpu())]
        texts = tok.batch_decode(completion_ids, skip_special_tokens=True)
        extra = {k: [r[k] for r in rows] for k in ("demo_reward", "demo_tokens") if k in rows[0]}
        monitors = {}  # the reward callable's log_metric (TRL's interface): raw R_RM and length
        scores = torch.tensor(self.reward(prompts=[r["prompt"] for r in rows], completions=texts,
                                          completion_ids=completion_ids, log_metric=monitors.__setitem__, **extra),
                              device=self.device)

        logp, values = logprobs_and_values(self.model, self.head, ids, attention, n_prompt)
        ref_logp = None
        if self.beta:
            with self.model.disable_adapter():
                ref_logp, _ = logprobs_and_values(self.model, None, ids, attention, n_prompt)
        normalised = whiten(scores) if cfg.normalize_advantages and len(scores) > 1 else scores
        rewards, kl = per_token_rewards(normalised, logp, ref_logp, mask, self.beta)
        advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.gae_lambda)
        if cfg.normalize_advantages:
            advantages = whiten(advantages, mask)
        return dict(ids=ids, attention=attention, mask=mask, n_prompt=n_prompt, logp=logp, values=values * mask,
                    advantages=advantages, returns=returns, scores=scores, kl=kl.sum(1),
                    lengths=mask.sum(1), monitors=monitors)

    def update(self, r: dict) -> dict[str, float]:
        """`num_iterations` epochs of clipped PPO updates on the rollout `r`; the last minibatch's losses."""
        cfg = self.cfg
        self.model.train()
        generator = torch.Generator().manual_seed(cfg.seed * 100_003 + self.step)
        size = max(1, len(r["ids"]) // cfg.minibatches)
        for _ in range(cfg.num_iterations):
            for idx in batched(torch.randperm(len(r["ids"]), generator=generator).tolist(), size):
                idx = torch.tensor(idx, device=self.device)
                logp, values = logprobs_and_values(self.model, self.head, r["ids"][idx], r["attention"][idx],
                                                   r["n_prompt"])
                losses = ppo_losses(logp, r["logp"][idx], values, r["values"][idx], r["advantages"][idx],
                                    r["returns"][idx], r["mask"][idx], cfg.epsilon, cfg.value_clip)
                loss = losses["policy_loss"] + cfg.value_coef * losses["value_loss"]
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    [p for g in self.optimizer.param_groups for p in g["params"]], cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
        return {"loss": loss.item(), "grad_norm": grad_norm.item(), **{k: v.item() for k, v in losses.items()}}

    def train(self) -> list[dict]:
        self.resume()
        t_start = time.time()
        while self.step < self.cfg.steps:
            t0 = time.time()
            rollout = self.rollout(self.prompts_for(self.step))
            stats = self.update(rollout)
            self.step += 1
            scores, lengths = rollout["scores"], rollout["lengths"]
            self.history.append({
                "step": self.step, **stats, "reward": scores.mean().item(), "reward_std": scores.std().item(),
                "kl": rollout["kl"].mean().item(), "completions/mean_length": lengths.mean().item(),
                "completions/clipped_ratio": (lengths >= self.cfg.max_new_tokens).float().mean().item(),
                "step_time": time.time() - t0, **rollout["monitors"],
            })
            if self.step % self.cfg.logging_steps == 0 or self.step == self.cfg.steps:
                log.info("ppo step %d/%d reward %.3f kl %.3f loss %.4f (%.1fs, %.0fs total)", self.step,
                         self.cfg.steps, scores.mean().item(), rollout["kl"].mean().item(), stats["loss"],
                         time.time() - t0, time.time() - t_start)
            if self.step in self.cfg.snapshot_steps:
                self.ckpt.snapshot(self.model, self.step)
            if self.cfg.checkpoint_steps and self.step % self.cfg.checkpoint_steps == 0:
                self.save_checkpoint()
        self.history.append({"step": self.step, "train_runtime": time.time() - t_start})
        return self.history

    # ----------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> None:
        """Adapters, value head, optimizer, RNG states and log: what resuming needs to continue the
        same run (the folder name is what transformers' get_last_checkpoint looks for)."""
        path = self.ckpt.dir / f"checkpoint-{self.step}"
        tmp = path.with_name(path.name + ".tmp")
        self.model.save_pretrained(tmp)
        torch.save({"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                    "history": self.history, "rng": _rng_state()}, tmp / "ppo_state.pt")
        kill_if_due(self.step, KILL_DURING_SAVE_ENV)  # the preemption tests' fault injection
        tmp.rename(path)  # complete checkpoints only: a kill mid-save leaves a .tmp folder, ignored
        kill_if_due(self.step)

    def resume(self) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        last = self.ckpt.last()
        if not last:
            return
        set_peft_model_state_dict(self.model, load_file(str(Path(last) / "adapter_model.safetensors")))
        state = torch.load(Path(last) / "ppo_state.pt", weights_only=False)
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.history = state["step"], state["history"]
        _set_rng_state(state["rng"])

    def save_model(self, out: str) -> None:
        self.model.save_pretrained(out)
        self.tok.save_pretrained(out)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])


def train_ppo(model, tok, rows, reward_func, beta, cfg, ckpt, out) -> list[dict]:
    """Train `model` with PPO on `reward_func` (TRL's reward-function interface) and save it to `out`."""
    seed_everything(cfg.seed)
    trainer = PPOTrainer(model, tok, rows, reward_func, beta, cfg, ckpt)
    history = trainer.train()
    trainer.save_model(str(out))
    ckpt.keep_snapshots(out)
    ckpt.clear()
    return history
