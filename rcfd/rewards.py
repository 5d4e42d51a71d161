"""The paper's objectives and reward models, in one place.

- R      : the reward model's score R_RM(x, y): a sentiment classifier's positive logit or a
           preference model's logit (`ClassifierReward`, movie reviews and summaries), or the
           average per-token log-likelihood under the frozen initial model (`LogLikelihood`, use
           case 1). Both have `score(prompts, completions)`.
- R_beta : R_RM(x, y) - beta * log(pi(y|x) / pi_0(y|x))                     (`kl_regularised_reward`)
- RCfD   : -(R_RM(x, y) - R_RM(x, y_demo))^2, y_demo the prompt's demo     (`rcfd_reward`)
- R_alpha: R_RM(x, y) + alpha * R_length(y), R_length = -|y|                 (`length_reward`;
           alpha per token, or in the reward model's units: `alpha_per_token`)
- RCfD with two rewards: sum of the whitened per-reward RCfD rewards         (`rcfd_multi_reward`)
- RCfD towards the demonstrations' distribution (beyond the paper): the energy score of the
           prompt's samples against its demo, -|R - R_demo| + E|R - R'|      (`rcfd_energy_reward`)

During RL the KL term of R_beta is added by TRL's RLOO trainer from the sampled tokens' log
probabilities (its `beta`); the reward callables below give it R_RM or R_CfD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .utils import InputError, batched, cpu_autocast, log


def rcfd_reward(policy_reward: torch.Tensor | float, demo_reward: torch.Tensor | float):
    """Reward Calibration from Demonstration: pull the policy's reward to its demo's reward."""
    return -((policy_reward - demo_reward) ** 2)


def rcfd_energy_reward(rewards: torch.Tensor, demo_reward, leave_one_out: bool = True) -> torch.Tensor:
    """RCfD towards the demonstrations' distribution, not their conditional mean (beyond the paper;
    docs/rcfd_optimum.md). `rewards` (..., k): R_RM of one prompt's k samples; `demo_reward` (...):
    its demonstration's.

    RCfD's squared distance is minimised by E[R_d | x] with no spread, so when the prompt tells
    little about its demonstration's reward the policy is narrower than the demonstrations. The
    energy score E|R - R_d| - 1/2 E|R - R'| (R, R' two independent samples) is a strictly proper
    scoring rule: minimised only when the policy's reward on x is distributed as R_d given x, so its
    pooled optimum is the demonstrations' distribution, with no coefficient to tune. Its policy
    gradient is REINFORCE on -|R_i - R_d| + E|R_i - R'| (the pairwise term's gradient flows through
    both samples, hence 1 and not 1/2), E|R_i - R'| being the mean over the prompt's other samples.

    Under RLOO's leave-one-out baseline each other sample's reward holds |R_j - R_i|, which takes
    1/(k-1) of the pairwise term's gradient away: `leave_one_out` scales the term by (k-1)/(k-2) to
    undo it (k >= 3). With a batch-mean baseline (PPO) the loss is O(1/batch) and is not corrected."""
    k = rewards.shape[-1]
    if k < (3 if leave_one_out else 2):
        raise InputError(f"RCfD's energy score needs {3 if leave_one_out else 2}+ samples per prompt "
                         f"({'RLOO' if leave_one_out else 'PPO'}), got {k}")
    demo = torch.as_tensor(demo_reward, dtype=rewards.dtype).unsqueeze(-1)
    spread = (rewards.unsqueeze(-1) - rewards.unsqueeze(-2)).abs().sum(-1) / (k - 1)  # mean over the others
    return -(rewards - demo).abs() + ((k - 1) / (k - 2) if leave_one_out else 1.0) * spread


def kl_regularised_reward(reward, logprob_policy, logprob_ref, beta: float):
    """R_beta = R - beta * KL estimate, with log pi(y|x) - log pi_0(y|x) summed over y's tokens."""
    return reward - beta * (logprob_policy - logprob_ref)


@dataclass
class RewardModelConfig:
    batch_size: int = 64
    max_length: int = 128
    positive_label: int = 1  # index of the logit used as the reward (0 for a one-logit preference RM)
    pair_input: bool = False  # encode (prompt, completion) as a text pair (preference RMs) instead of prompt + completion


class ClassifierReward:
    """A sequence classifier used as a reward: the positive-class logit of x + y (sentiment), or the
    single logit of a Bradley-Terry preference model on the pair (x, y) (summarisation).

    It re-tokenises text with its own tokenizer (the policy's tokens mean nothing to it).
    """

    def __init__(self, path: str, cfg: RewardModelConfig, device: str = "cpu"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.cfg = cfg
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        set_head_activation(self.model, getattr(self.model.config, "head_activation", "tanh"))

    @torch.inference_mode()
    def logits(self, texts: list[str], pairs: list[str] | None = None) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.cfg.batch_size):
            enc = encode(self.tokenizer, texts[i:i + self.cfg.batch_size],
                         None if pairs is None else pairs[i:i + self.cfg.batch_size], self.cfg.max_length)
            out.append(self.model(**enc.to(self.device)).logits.float().cpu())
        return torch.cat(out)

    def score(self, prompts: list[str], completions: list[str]) -> list[float]:
        """R_RM(x, y) for each (prompt, completion): the pair's logit, or that of the text x + y."""
        if self.cfg.pair_input:
            return self.logits(list(prompts), list(completions))[:, self.cfg.positive_label].tolist()
        return self.logits([p + c for p, c in zip(prompts, completions)])[:, self.cfg.positive_label].tolist()


def set_head_activation(model, name: str) -> None:
    """The activation between the classification head's two linear layers. A BERT classifier's
    head is pooler dense -> tanh -> classifier: tanh bounds the score, so a reward model saturates
    (its best texts all score the same). "relu" makes it DistilBERT's head (pre_classifier -> ReLU ->
    classifier, the paper's IMDB reward model), unbounded above. Stored in the model's config
    (`head_activation`) so that every later load builds the same head."""
    if name not in ("tanh", "relu"):
        raise InputError(f"reward_model.train.head_activation {name!r}: expected 'tanh' or 'relu'")
    pooler = getattr(getattr(model, model.base_model_prefix, None), "pooler", None)
    if pooler is None or not hasattr(pooler, "activation"):
        if name != "tanh":
            raise InputError(f"head_activation {name!r}: {type(model).__name__} has no pooler activation to replace")
        return
    pooler.activation = torch.nn.ReLU() if name == "relu" else torch.nn.Tanh()
    model.config.head_activation = name


MIN_DOCUMENT_TOKENS = 32  # a (document, completion) pair keeps at least this much of its document


def encode(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int):
    """Encoder input for texts, or for (document, completion) pairs. A pair too long loses the end of
    its document only, row by row, never the completion being judged: otherwise a longer answer
    would be scored against a shorter document, an input that changes with the very length a
    reward is about. The config check (rcfd.config) sizes max_length to hold the longest
    completion a policy may write; a longer one (pathological text) keeps its first
    max_length - MIN_DOCUMENT_TOKENS - specials tokens, with a warning."""
    if pairs is None:
        return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - MIN_DOCUMENT_TOKENS
    pairs = cut_to_tokens(tokenizer, pairs, room)
    return tokenizer(texts, pairs, padding=True, truncation="only_first", max_length=max_length,
                     return_tensors="pt")


def cut_to_tokens(tokenizer, texts: list[str], n: int) -> list[str]:
    """Each text cut after its first n tokens (unchanged when it has no more)."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for text, ids, offsets in zip(texts, enc["input_ids"], enc["offset_mapping"]):
        if len(ids) > n:
            log.warning("a completion of %d reward-model tokens is cut to %d to fit max_length", len(ids), n)
            text = text[:offsets[n - 1][1]]
            while len(tokenizer(text, add_special_tokens=False)["input_ids"]) > n:  # a word split differently
                text = text[:-1]
        out.append(text)
    return out


def completion_length(ids, eos_token_id: int | None) -> int:
    """|y| in policy tokens: the tokens before the first EOS, the EOS itself not counted. The one
    definition of length: R_length during training (TRL's completion_ids end with the EOS when the
    policy stopped), the demonstrations' demo_tokens (text without EOS) and the evaluation's
    completion_tokens."""
    ids = [int(t) for t in ids]
    return ids.index(eos_token_id) if eos_token_id in ids else len(ids)


def mean_or_nan(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


class LogLikelihood:
    """Average per-token log-likelihood of a continuation y given x under a frozen causal LM.

    The reward of the paper's use case 1, and the naturalness proxy of the movie-review use case.
    Batched; the model stays in memory across calls.
    """

    def __init__(self, path: str, batch_size: int = 32, device: str = "cpu", cpu_bf16: bool = True):
        from .models import load_policy, load_tokenizer

        self.tokenizer = load_tokenizer(path, padding_side="right")
        self.model = load_policy(path, None, device)
        # cpu_bf16: the forward under bf16 autocast on CPU (utils.cpu_autocast), 1.8x faster on this
        # AVX512-BF16 CPU; a sequence's mean moves by at most 0.03 nats (docs/configuration.md). A
        # sequence's score does not depend on the rest of its batch, in bf16 as in fp32 (measured on the
        # 612 Wikipedia demonstrations scored all together vs the 100 evaluation ones alone: equal).
        self.batch_size, self.device, self.cpu_bf16 = batch_size, device, cpu_bf16

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
            # token t of the sequence is predicted at position t - 1; a continuation's first
            # token has the prompt's last token before it (no prompt: it cannot be scored). The LM
            # head and the softmax run only from the earliest continuation's position on.
            first = [max(n, 1) - 1 for n in n_prompt]  # the position predicting each continuation's first token
            start = min(first)
            with cpu_autocast(self.cpu_bf16, self.device):
                logits = self.model(input_ids=input_ids, attention_mask=attention, logits_to_keep=width - start).logits
            logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, input_ids[:, start + 1:, None])[..., 0].cpu()
            out.extend(logp[b, f - start:len(i) - 1 - start].tolist() for b, (f, i) in enumerate(zip(first, ids)))
        return out

    def score(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Average per-token log-likelihood of each continuation (NaN for an empty one)."""
        return [mean_or_nan(t) for t in self.token_logprobs(prompts, continuations)]


def load_reward_model(path: str, settings: dict):
    """A task's reward model from its folder or hub id and its settings {kind, device, <scorer
    settings>}: "classifier" (a sequence classifier, the default) or "loglik" (the frozen initial
    policy, `path` its folder or hub id)."""
    from .utils import from_params, pick_device

    params = dict(settings)
    kind, device = params.pop("kind", "classifier"), pick_device(params.pop("device", "auto"))
    if kind == "classifier":
        return ClassifierReward(path, from_params(RewardModelConfig, params, "reward_model.score"), device)
    if kind == "loglik":
        return LogLikelihood(path, params.get("batch_size", 32), device, params.get("cpu_bf16", True))
    raise InputError(f"reward model kind {kind!r}: expected 'classifier' or 'loglik'")


def length_reward(n_tokens):
    """R_length(y) = -|y|, in policy tokens (paper use case 3)."""
    return -n_tokens


ALPHA_UNITS = ("per_token", "demo_sd")


def alpha_per_token(alpha: float, unit: str, demos: list[dict]) -> float:
    """R_alpha's weight per token. `per_token` (the paper's): `alpha` itself. `demo_sd`: `alpha` in
    this reward model's units, k * sd(R_RM) / sd(|y|) over the training demonstrations (`demos` with
    demo_reward and demo_tokens): k = 1 trades one standard deviation of the demonstrations' reward
    for one of their length, whatever the reward model's scale."""
    if unit == "per_token" or not alpha:
        return alpha
    if unit != "demo_sd":
        raise InputError(f"config key 'alpha_unit' {unit!r}: expected one of {list(ALPHA_UNITS)}")
    rewards = torch.tensor([float(d["demo_reward"]) for d in demos], dtype=torch.float64)
    tokens = torch.tensor([float(d["demo_tokens"]) for d in demos], dtype=torch.float64)
    if len(demos) < 2 or tokens.std() == 0:
        raise InputError(f"alpha_unit demo_sd: the {len(demos)} training demonstrations' lengths have no spread")
    return float(alpha * rewards.std() / tokens.std())


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Zero mean, unit variance over the batch: (x - mean) / (std + 1e-8), std the unbiased (n - 1)
    standard deviation; a batch of one, or a constant one, whitens to zeros. With `mask`, over the
    elements where it is 1 (the others become 0): PPO's per-token advantages. Used for two-reward
    RCfD's calibrated rewards and for PPO's scores and advantages."""
    if mask is None:
        return (x - x.mean()) / (x.std() + 1e-8) if x.numel() > 1 else x - x.mean()
    n = mask.sum()
    mean = (x * mask).sum() / n
    std = (((x - mean) ** 2 * mask).sum() / (n - 1).clamp(min=1)).sqrt()
    return (x - mean) / (std + 1e-8) * mask


def rcfd_multi_reward(rewards: list[torch.Tensor], demo_rewards: list[torch.Tensor]) -> torch.Tensor:
    """RCfD with several rewards (paper §3.2): calibrate each reward to its demonstration value,
    whiten each calibrated reward, then sum with no weights. The paper does not state the whitening
    statistics; we use the generation batch's mean and std, as its PPO normalises rewards per batch."""
    return sum(whiten(rcfd_reward(r, d)) for r, d in zip(rewards, demo_rewards))


EMPTY_COMPLETION = ("score", "worst")  # config `rl.empty_completion`


def per_prompt(prompts: list[str], values: torch.Tensor, demo: torch.Tensor, fn) -> torch.Tensor:
    """fn(values of one prompt's samples, its demo value) applied prompt by prompt (samples of a
    prompt need not be adjacent), results back in the samples' order."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p, []).append(i)
    out = torch.empty_like(values)
    for index in groups.values():
        out[index] = fn(values[index], demo[index[0]])
    return out


def make_reward_func(objective: str, reward_model, alpha: float = 0.0, eos_token_id: int | None = None,
                     empty_completion: str = "score", leave_one_out: bool = True):
    """The TRL reward callable for an objective:

    "reward"       R_RM + alpha * R_length  (R and R_beta with alpha = 0; the paper's R_alpha otherwise)
    "rcfd"         -(R_RM(x, y) - R_RM(x, y_demo))^2
    "rcfd2"        RCfD on the two rewards R_RM and R_length (`rcfd_multi_reward`)
    "rcfd_energy"  the energy score of each prompt's samples against its demo (`rcfd_energy_reward`;
                   `leave_one_out`: the optimiser's baseline is RLOO's)

    TRL passes every dataset column as a keyword argument: RCfD reads `demo_reward` (scored once
    before training) and, with two rewards, `demo_tokens`; lengths come from `completion_ids`
    (`completion_length`, the policy's `eos_token_id` not counted).

    `empty_completion`: "score" (the paper) scores an empty answer like any other; "worst" gives it
    the batch's worst reward, a guard against two-reward RCfD's collapse to empty answers (an empty
    answer is closer to a short demonstration's length than a capped one). Each call also reports,
    through TRL's `log_metric`, the batch's raw R_RM and length (`monitor/*` in train_log.csv): the
    objective alone (e.g. RCfD's -(r - r_demo)^2) does not say where the policy's reward and length go.
    """
    if objective not in ("reward", "rcfd", "rcfd2", "rcfd_energy"):
        raise ValueError(f"unknown objective {objective!r}")
    if empty_completion not in EMPTY_COMPLETION:
        raise InputError(f"config key 'rl.empty_completion' {empty_completion!r}: expected one of {EMPTY_COMPLETION}")

    def reward_func(prompts, completions, completion_ids=None, demo_reward=None, demo_tokens=None, log_metric=None,
                    **_):
        scores = torch.tensor(reward_model.score(prompts, completions))
        needs_length = objective == "rcfd2" or alpha != 0 or empty_completion == "worst"
        if needs_length and completion_ids is None:
            raise ValueError("the length reward and the empty-answer guard need TRL's 'completion_ids'")
        length = (torch.tensor([float(completion_length(ids, eos_token_id)) for ids in completion_ids])
                  if completion_ids is not None else None)
        if objective != "reward" and demo_reward is None:
            raise ValueError("the RCfD reward needs a 'demo_reward' column in the training data")
        if objective == "reward":
            out = scores + alpha * length_reward(length) if alpha else scores
        elif objective == "rcfd":
            out = rcfd_reward(scores, torch.tensor(demo_reward, dtype=scores.dtype))
        elif objective == "rcfd_energy":
            out = per_prompt(prompts, scores, torch.tensor(demo_reward, dtype=scores.dtype),
                             lambda r, d: rcfd_energy_reward(r, d, leave_one_out))
        else:
            if demo_tokens is None:
                raise ValueError("two-reward RCfD needs a 'demo_tokens' column in the training data")
            out = rcfd_multi_reward([scores, length_reward(length)],
                                    [torch.tensor(demo_reward, dtype=scores.dtype),
                                     length_reward(torch.tensor(demo_tokens, dtype=scores.dtype))])
        # a completion with no token has no log-likelihood (NaN): give it the batch's worst reward;
        # with the guard, so does every empty answer
        bad = out.isnan()
        if empty_completion == "worst":
            bad |= length == 0
        worst = out[~out.isnan()].min() if not out.isnan().all() else torch.tensor(0.0)
        if log_metric is not None:
            log_monitors(log_metric, scores, length)
        return torch.where(bad, worst, out).tolist()

    reward_func.__name__ = f"{objective}_reward"  # TRL logs rewards under the callable's name
    return reward_func


def log_monitors(log_metric, scores: torch.Tensor, length: torch.Tensor | None) -> None:
    """The batch's raw reward and length, whatever the objective: mean R_RM over the scorable
    samples, mean |y| in policy tokens and the fraction of empty answers."""
    finite = scores[~scores.isnan()]
    if len(finite):
        log_metric("monitor/reward_model", finite.mean().item())
    if length is not None:
        log_metric("monitor/length", length.mean().item())
        log_metric("monitor/empty", (length == 0).float().mean().item())
