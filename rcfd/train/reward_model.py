"""Reward-model training: a sentiment classifier (movie reviews) or a Bradley-Terry preference model
(summaries), fine-tuned here from a small encoder. Scoring with a trained model is rcfd.rewards."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..rewards import ClassifierReward, RewardModelConfig, encode, set_head_activation
from ..utils import InputError, batched, cpu_autocast, log, pick_device, seed_everything


@dataclass
class RewardTrainConfig:
    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 64
    weight_decay: float = 0.01
    loss: str = "classification"  # "classification" (label per text) or "bradley_terry" (preference pairs)
    head_activation: str = "tanh"  # "relu": DistilBERT's unbounded head (rewards.set_head_activation)
    cpu_bf16: bool = True  # on CPU, forward and backward under bf16 autocast (utils.cpu_autocast); scoring stays fp32
    seed: int = 0
    device: str = "auto"


def train_reward_classifier(base: str, rows: list[dict], cfg: RewardTrainConfig, out: str | Path) -> dict:
    """Fine-tune an encoder as a 2-class sentiment classifier (label 1 = positive).

    Returns {"heldout_accuracy": ..., ...}; the paper's RM is a DistilBERT IMDB classifier. Held-out
    rows whose text is a review's prefix (the length the RM scores) and that carry the whole review
    (`full_text`) are also classified whole, up to the encoder's maximum length:
    "heldout_accuracy_full_reviews", side by side with the accuracy on the prefixes.
    """

    def loss(model, tok, batch, device):
        enc = tok([r["text"] for r in batch], padding=True, truncation=True,
                  max_length=cfg.max_length, return_tensors="pt").to(device)
        return model(**enc, labels=torch.tensor([r["label"] for r in batch], device=device)).loss

    def accuracy(scorer, held, key="text"):
        predicted = scorer.logits([r[key] for r in held]).argmax(-1).tolist()
        return sum(p == r["label"] for p, r in zip(predicted, held)) / len(held)

    metrics = _train_encoder(base, rows, cfg, out, num_labels=2, loss=loss, accuracy=accuracy,
                             score_cfg=RewardModelConfig(max_length=cfg.max_length))
    whole = [r for r in rows if r["split"] == "eval" and "full_text" in r]
    if whole:
        scorer = ClassifierReward(str(out), RewardModelConfig(batch_size=16), pick_device(cfg.device))
        scorer.cfg.max_length = min(FULL_REVIEW_TOKENS, scorer.model.config.max_position_embeddings)
        metrics |= {"heldout_accuracy_full_reviews": accuracy(scorer, whole, "full_text"),
                    "n_heldout_full_reviews": len(whole), "full_review_max_length": scorer.cfg.max_length}
        log.info("held-out accuracy on %d whole reviews %.3f (prefixes: %.3f)", len(whole),
                 metrics["heldout_accuracy_full_reviews"], metrics["heldout_accuracy"])
    return metrics


FULL_REVIEW_TOKENS = 512  # a whole review, up to the encoder's maximum length (BERT-style position embeddings)


def train_preference_rm(base: str, rows: list[dict], cfg: RewardTrainConfig, out: str | Path) -> dict:
    """Fine-tune an encoder as a Bradley-Terry preference model: one logit r(x, y) on the pair
    (prompt, summary), loss -log sigmoid(r(x, chosen) - r(x, rejected)).

    Returns {"heldout_accuracy": fraction of held-out pairs ranked right, ...}. Stands in for the
    paper's human-preference RM (OpenAssistant DeBERTa), which does not ship offline.
    """
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
            with cpu_autocast(cfg.cpu_bf16, device):
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


