"""The paper's objectives and reward models, in one place.

- R      : the reward model's score R_RM(x, y): a sentiment classifier's positive logit
           (`ClassifierReward`, movie reviews) or the average per-token log-likelihood under the
           frozen initial model (`LogLikelihood`, use case 1). Both have `score(prompts, completions)`.
- R_beta : R_RM(x, y) - beta * log(pi(y|x) / pi_0(y|x))                     (`kl_regularised_reward`)
- RCfD   : -(R_RM(x, y) - R_RM(x, y_demo))^2, y_demo the prompt's demo     (`rcfd_reward`)

During RL the KL term of R_beta is added by TRL's RLOO trainer from the sampled tokens' log
probabilities (its `beta`); the reward callables below give it R_RM or R_CfD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .utils import batched


def rcfd_reward(policy_reward: torch.Tensor | float, demo_reward: torch.Tensor | float):
    """Reward Calibration from Demonstration: pull the policy's reward to its demo's reward."""
    return -((policy_reward - demo_reward) ** 2)


def kl_regularised_reward(reward, logprob_policy, logprob_ref, beta: float):
    """R_beta = R - beta * KL estimate, with log pi(y|x) - log pi_0(y|x) summed over y's tokens."""
    return reward - beta * (logprob_policy - logprob_ref)


@dataclass
class RewardModelConfig:
    batch_size: int = 64
    max_length: int = 128
    positive_label: int = 1  # index of the positive-class logit


class ClassifierReward:
    """A sequence classifier used as a reward: the positive-class logit of x + y.

    It re-tokenises text with its own tokenizer (the policy's tokens mean nothing to it).
    """

    def __init__(self, path: str, cfg: RewardModelConfig, device: str = "cpu"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.cfg = cfg
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()

    @torch.inference_mode()
    def logits(self, texts: list[str]) -> torch.Tensor:
        out = []
        for chunk in batched(list(texts), self.cfg.batch_size):
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.cfg.max_length,
                                 return_tensors="pt").to(self.device)
            out.append(self.model(**enc).logits.float().cpu())
        return torch.cat(out)

    def __call__(self, texts: list[str]) -> list[float]:
        return self.logits(texts)[:, self.cfg.positive_label].tolist()

    def score(self, prompts: list[str], completions: list[str]) -> list[float]:
        return self([p + c for p, c in zip(prompts, completions)])


def mean_or_nan(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


class LogLikelihood:
    """Average per-token log-likelihood of a continuation y given x under a frozen causal LM.

    The reward of the paper's use case 1, and the naturalness proxy of the movie-review use case.
    Batched; the model stays in memory across calls.
    """

    def __init__(self, path: str, batch_size: int = 32, device: str = "cpu"):
        from .models import load_policy, load_tokenizer

        self.tokenizer = load_tokenizer(path, padding_side="right")
        self.model = load_policy(path, None, device)
        self.batch_size, self.device = batch_size, device

    @torch.inference_mode()
    def token_logprobs(self, prompts: list[str], continuations: list[str]) -> list[list[float]]:
        """log p(y_t | x, y_<t) for every token of each continuation (the prompt is context only)."""
        out: list[list[float]] = []
        for chunk in batched(list(zip(prompts, continuations)), self.batch_size):
            ids, n_prompt = [], []
            for x, y in chunk:
                px = self.tokenizer(x, add_special_tokens=False)["input_ids"]
                py = self.tokenizer(y, add_special_tokens=False)["input_ids"]
                ids.append(px + py)
                n_prompt.append(len(px))
            width = max(len(i) for i in ids)
            pad = self.tokenizer.pad_token_id
            input_ids = torch.tensor([i + [pad] * (width - len(i)) for i in ids], device=self.device)
            attention = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=self.device)
            logits = self.model(input_ids=input_ids, attention_mask=attention).logits.float()
            logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, input_ids[:, 1:, None])[..., 0].cpu()
            # token t of the sequence is predicted at position t - 1; a continuation's first
            # token has the prompt's last token before it (no prompt: it cannot be scored)
            out.extend(logp[b, max(n_prompt[b], 1) - 1:len(ids[b]) - 1].tolist() for b in range(len(chunk)))
        return out

    def score(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Average per-token log-likelihood of each continuation (NaN for an empty one)."""
        return [mean_or_nan(t) for t in self.token_logprobs(prompts, continuations)]

    __call__ = score


def load_scorer(kind: str, path: str, params: dict, device: str):
    """The reward model of a task: "classifier" (a sequence classifier folder or hub id) or
    "loglik" (the frozen initial policy, `path` its folder or hub id)."""
    from .utils import InputError, from_params

    if kind == "classifier":
        return ClassifierReward(path, from_params(RewardModelConfig, params, "reward_model.score"), device)
    if kind == "loglik":
        return LogLikelihood(path, params.get("batch_size", 32), device)
    raise InputError(f"reward model kind {kind!r}: expected 'classifier' or 'loglik'")


def make_reward_func(objective: str, reward_model: ClassifierReward | LogLikelihood):
    """The TRL reward callable for an objective: "reward" (R, R_beta) or "rcfd".

    TRL passes every dataset column as a keyword argument; RCfD reads `demo_reward`, which was
    scored once before training.
    """

    def reward_func(prompts, completions, demo_reward=None, **_):
        scores = torch.tensor(reward_model.score(prompts, completions))
        if objective == "rcfd":
            if demo_reward is None:
                raise ValueError("the RCfD reward needs a 'demo_reward' column in the training data")
            scores = rcfd_reward(scores, torch.tensor(demo_reward, dtype=scores.dtype))
        # a completion with no token has no log-likelihood (NaN): give it the batch's worst reward
        worst = scores[~scores.isnan()].min() if not scores.isnan().all() else torch.tensor(0.0)
        return torch.where(scores.isnan(), worst, scores).tolist()

    reward_func.__name__ = f"{objective}_reward"  # TRL logs rewards under the callable's name
    return reward_func
