"""LLM-as-judge (paper, Metrics): yes/no questions put to a chat model; a question's score is the
fraction of evaluated samples it answers "Yes".

The answer is read from the next-token logits after the chat-templated question, never from
generated text: P(Yes) and P(No) are the probabilities of the answer words' first tokens
("Yes"/" Yes" and "No"/" No"; a token in both sets is dropped), the sample counts as "Yes" when
P(Yes) > P(No), and the soft score P(Yes) / (P(Yes) + P(No)) is kept too.

Each question is a user-message template (config `<task>.evaluate.judge.questions`) with fields
{text} (prompt + completion), {prompt}, {completion}, and, for 1-shot questions, {example} /
{example_completion}: one human demonstration from the training prompts, shown as an example.

Δ_demo (paper) = Σ over the questions of |judge score of the model − judge score of the demonstrations|.
"""

from __future__ import annotations

import math
import string
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..utils import InputError, batched, cpu_autocast, log

FIELDS = {"text", "prompt", "completion", "example", "example_completion"}


@dataclass
class JudgeConfig:
    model: str = "policy"  # the `models` key of the judge (the workflow passes its folder or hub id)
    label: str = ""  # how tables name the judge
    questions: dict[str, str] = field(default_factory=dict)  # name -> user-message template
    example_index: int = 0  # which training demonstration fills {example} in 1-shot questions
    max_samples: int | None = None  # judge at most this many samples: each prompt's first sample first
    batch_size: int = 16
    max_field_tokens: int | None = 256  # each inserted text is cut to this many judge tokens
    device_map: str | None = None  # "auto": shard a judge too large for one GPU (paper scale)
    yes_words: list[str] = field(default_factory=lambda: ["Yes", " Yes"])
    no_words: list[str] = field(default_factory=lambda: ["No", " No"])
    validation: dict = field(default_factory=dict)  # how it is validated (judge_validation.ValidationConfig)
    # ask only the questions the validation found informative (judge_validation.informative_questions)
    informative_only: bool = True
    device: str = "auto"
    cpu_bf16: bool = True  # the evaluation's `cpu_bf16` (the workflow passes it): bf16 autocast on CPU
    # the questions' common beginning (chat template, instructions, a 1-shot example) run once per batch,
    # its keys and values copied to every question (Judge.soft_scores)
    share_prefix: bool = True

    def __post_init__(self):
        for name, template in self.questions.items():
            used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if used - FIELDS:
                raise InputError(f"evaluate.judge.questions.{name}: unknown field(s) {sorted(used - FIELDS)}; "
                                 f"expected some of {sorted(FIELDS)}")


def judge_name(model: str) -> str:
    """How results name the judge that scored them (a local folder's name or a hub id's last part), so
    that a validation and an evaluation by different judges are never mixed (tables.apply_judge_validation)."""
    return Path(str(model).rstrip("/")).name


def answer_ids(tok, yes_words, no_words) -> tuple[list[int], list[int]]:
    """First-token ids of the yes and no answer words, without the ids both share."""
    def first(words):
        return {ids[0] for ids in (tok.encode(w, add_special_tokens=False) for w in words) if ids}

    yes, no = first(yes_words), first(no_words)
    yes, no = sorted(yes - no), sorted(no - yes)
    if not yes or not no:
        raise InputError(f"judge tokenizer: answer words {yes_words} / {no_words} share every first token")
    return yes, no


def chat_prompt(tok, message: str) -> str:
    """The question as the judge's user turn, ready for its answer; a model without a chat
    template (the smoke scale's tiny model) gets the plain text followed by 'Answer:'."""
    if tok.chat_template:
        return tok.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True,
                                       tokenize=False)
    return f"{message}\nAnswer:"


def fill(template: str, sample: dict, example: dict | None, cut) -> str:
    """The question for one sample (prompt, completion); `cut` shortens each inserted text."""
    values = {"prompt": sample["prompt"], "completion": sample["completion"],
              "text": sample["prompt"] + sample["completion"]}
    if example is not None:
        values.update(example=example["prompt"] + example["demo"], example_completion=example["demo"])
    return template.format(**{k: cut(v) for k, v in values.items()})


class Judge:
    """A chat model loaded once; `soft_scores(messages)` = P(Yes) / (P(Yes) + P(No)) per message."""

    def __init__(self, path: str, cfg: JudgeConfig):
        import torch
        from transformers import AutoModelForCausalLM

        from ..models import load_tokenizer
        from ..utils import pick_device, pick_dtype

        self.cfg, device = cfg, pick_device(cfg.device)
        self.tok = load_tokenizer(path, padding_side="left")
        kw = {"device_map": cfg.device_map} if cfg.device_map else {}
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(device), **kw).eval()
        if not cfg.device_map:
            self.model.to(device)
        self.yes, self.no = answer_ids(self.tok, cfg.yes_words, cfg.no_words)
        self.torch = torch

    def cut(self, text: str) -> str:
        n = self.cfg.max_field_tokens
        ids = self.tok.encode(text, add_special_tokens=False)
        return text if n is None or len(ids) <= n else self.tok.decode(ids[:n])

    def soft_scores(self, messages: list[str]) -> np.ndarray:
        """P(Yes) / (P(Yes) + P(No)) of each message, in batches. With `share_prefix`, the token ids
        every question starts with (`shared_prefix`) are run once per batch and their keys and values
        copied to each row, which then runs only its own tokens: the same ids at the same positions,
        so the same scores up to rounding."""
        torch, t0 = self.torch, time.time()
        special = not self.tok.chat_template  # a chat template writes its own special tokens
        rows = self.tok([chat_prompt(self.tok, m) for m in messages], add_special_tokens=special)["input_ids"]
        prefix = shared_prefix(rows) if self.cfg.share_prefix else []
        out = np.zeros(len(rows))
        with torch.inference_mode():
            for index in batched(list(range(len(rows))), self.cfg.batch_size):
                # a batch of one row has nothing to share: it runs whole
                share = prefix if len(index) > 1 else []
                out[index] = self._scores([rows[i][len(share):] for i in index], share)
                log.info("judge: %d/%d questions (%.0fs)", index[-1] + 1, len(rows), time.time() - t0)
        return out

    def _scores(self, rows: list[list[int]], prefix: list[int]) -> np.ndarray:
        """Soft scores of one batch: each row's ids after the shared `prefix` (all of them when it is
        []; with a prefix, two rows or more)."""
        from ..sampling import prefix_cache

        torch, device = self.torch, self.model.device
        width = max(map(len, rows))
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)  # left padding
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        with cpu_autocast(self.cfg.cpu_bf16, str(device)):
            cache = None
            if prefix:  # one distinct row: computed once, copied to each (the pads sit after it, masked)
                ones = torch.ones(len(rows), len(prefix), dtype=mask.dtype, device=device)
                cache = prefix_cache(self.model, torch.tensor([prefix] * len(rows), device=device), ones)
                mask = torch.cat([ones, mask], dim=1)
            # each row's tokens at the positions they have without padding (after the prefix's)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -width:]
            # only the last position's logits are read: the LM head runs on it alone
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                logits_to_keep=1).logits[:, -1].float()
        # P(Yes) / (P(Yes) + P(No)) = sigmoid(log P(Yes) - log P(No)); the softmax's normaliser cancels
        yes, no = (torch.logsumexp(logits[:, i], dim=-1) for i in (self.yes, self.no))
        return torch.sigmoid(yes - no).cpu().numpy()


def shared_prefix(rows: list[list[int]], min_tokens: int = 8) -> list[int]:
    """The token ids every row starts with, keeping at least one id of each row's own ([] when
    shorter than `min_tokens`, or with one row: nothing to share)."""
    if len(rows) < 2:
        return []
    n = min(map(len, rows)) - 1
    for i in range(n):
        if any(r[i] != rows[0][i] for r in rows):
            n = i
            break
    return list(rows[0][:n]) if n >= min_tokens else []


def judged_indices(samples: list[dict], max_samples: int | None) -> list[int]:
    """Which samples are judged: all, or the first `max_samples` taking every prompt's sample 0
    before any sample 1 (so a run and the demonstrations are judged on the same prompts)."""
    order = sorted(range(len(samples)), key=lambda i: (samples[i].get("sample", 0), i))
    return sorted(order[:max_samples])


def judge_samples(judge: Judge, samples: list[dict], example: dict | None) -> dict[str, np.ndarray]:
    """Soft score of every sample ({prompt, completion}) for every configured question."""
    return {name: judge.soft_scores([fill(t, s, example, judge.cut) for s in samples])
            for name, t in judge.cfg.questions.items()}


def summarise(soft: dict[str, np.ndarray]) -> dict[str, float]:
    """Per question: judge_<q> = fraction of "Yes" (P(Yes) > P(No)), judge_<q>_soft = mean soft score."""
    row = {}
    for name, s in soft.items():
        row[f"judge_{name}"] = float(np.mean(s > 0.5))
        row[f"judge_{name}_soft"] = float(np.mean(s))
    return row


def question_columns(columns) -> list[str]:
    """The judge-score columns (judge_<q>, not their soft scores or judged counts, nor the run's
    `judge_model`) among `columns`."""
    return [c for c in columns if c.startswith("judge_") and not c.endswith(("_soft", "_judged"))
            and c != "judge_model"]


def delta_demo(model: dict, demos: dict, columns: list[str]) -> float:
    """Δ_demo = Σ_q |score_q(model) − score_q(demonstrations)| (NaN if a score is missing)."""
    if not columns:
        return math.nan
    return float(sum(abs(float(model.get(c, math.nan)) - float(demos.get(c, math.nan))) for c in columns))
