"""Summarisation (paper use cases 2b and 3): one prompt per paper and aspect (an instruction and the
abstract, cut at a sentence boundary to fit), the human summary of that aspect as its
demonstration; the reward model's preference pairs (human summary over a corrupted one) come from
other papers."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..utils import InputError, log
from .dedup import NearCopyConfig, check_disjoint, near_copy_report, split_sizes, without_near_copies


# --------------------------------------------------------------------------- summarisation
@dataclass
class SummaryDataConfig(NearCopyConfig):
    source: str = "aclsum"  # "aclsum" (offline, 250 papers x 3 aspect summaries) or "hub" (TL;DR)
    hub_id: str = "openai/summarize_from_feedback"
    hub_config: str = "comparisons"
    hub_split: str = "train"
    min_confidence: int = 5  # paper: TL;DR comparisons with annotator confidence >= 5
    aspects: list[str] = field(default_factory=lambda: ["challenge", "approach", "outcome"])
    instruction: str = "Summarize the {aspect} of this paper in one sentence."
    max_prompt_tokens: int = 160  # the document is cut at a sentence boundary to fit
    rm_splits: list[str] = field(default_factory=lambda: ["train"])  # papers that train the reward model only
    n_eval_prompts: int = 90
    n_train_prompts: int | None = None  # None: every remaining prompt
    rm_eval_fraction: float = 0.2
    seed: int = 0


def _detokenize(text: str) -> str:
    """ACLSum stores tokenised sentences ("results , in 20 % ."): undo the spaces around punctuation."""
    text = re.sub(r"([(\[]) ", r"\1", text)
    return re.sub(r" ([.,;:!?%)\]])", r"\1", text)


def read_aclsum(archive: str | Path) -> list[dict]:
    """Papers of the ACLSum wheel: [{id, split, sentences (abstract), summary: {aspect: text}}]."""
    import json
    import zipfile

    papers = []
    try:
        with zipfile.ZipFile(archive) as z:
            for split in ("train", "val", "test"):
                for line in z.read(f"aclsum/dataset/{split}.jsonl").decode().splitlines():
                    r = json.loads(line)
                    papers.append({"id": r["id"], "split": split, "summary": r["summary"],
                                   "sentences": [_detokenize(s) for s in r["sentences"]["abstract"]]})
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise InputError(f"{archive}: not the aclsum wheel ({e})") from None
    return papers


def read_hub_tldr(cfg: SummaryDataConfig) -> list[dict]:
    """Paper scale: TL;DR comparisons with confidence >= min_confidence, one paper-like record per
    post with the preferred summary as its demonstration and the other one as the rejected."""
    from datasets import load_dataset

    papers, seen = [], set()
    for r in load_dataset(cfg.hub_id, cfg.hub_config, split=cfg.hub_split):
        conf = (r.get("extra") or {}).get("confidence")
        post_id = r["info"]["id"]
        if conf is None or conf < cfg.min_confidence or post_id in seen:
            continue
        seen.add(post_id)
        chosen, rejected = r["summaries"][r["choice"]]["text"], r["summaries"][1 - r["choice"]]["text"]
        papers.append({"id": post_id, "split": "hub", "sentences": [r["info"]["post"]],
                       "summary": {"tldr": chosen}, "rejected": {"tldr": rejected}})
    return papers


def _fit_document(sentences: list[str], tokenizer, max_tokens: int) -> str:
    """The leading sentences that fit in `max_tokens` policy tokens (at least the first one)."""
    kept = sentences[:1]
    for s in sentences[1:]:
        if len(tokenizer(" ".join(kept + [s]), add_special_tokens=False)["input_ids"]) > max_tokens:
            break
        kept.append(s)
    return " ".join(kept)


def corruptions(paper: dict, aspect: str, other: dict | None) -> list[str]:
    """Summaries a reader prefers the human one to: another paper's summary of the same aspect (when
    one is given), the human summary cut in half, the document's lead sentence copied, the same
    paper's summary of another aspect (when there is one)."""
    human = paper["summary"][aspect]
    words = human.split()
    out = [other["summary"][aspect]] if other and aspect in other["summary"] else []
    out += [" ".join(words[: max(1, len(words) // 2)]), paper["sentences"][0]]
    out += [paper["summary"][a] for a in paper["summary"] if a != aspect][:1]
    return [c for c in out if c.strip() and c != human]


def prepare_summaries(cfg: SummaryDataConfig, papers: list[dict], tokenizer) -> tuple[list[dict], list[dict], dict]:
    """Returns (prompts, rm_pairs, report); a paper that is a near-copy of another (its abstract
    and summaries) is dropped first.

    prompts: {id, split: train|eval, prompt, demo, demo_tokens, rejected} from the papers not used
             for the reward model; `rejected` is one corrupted summary (DPO's pair).
    rm_pairs: {id, split: train|eval, prompt, chosen, rejected} from the papers in `rm_splits`.
    """
    rng = random.Random(cfg.seed)
    papers, kept_papers, paper_texts = without_near_copies(
        sorted(papers, key=lambda p: p["id"]), lambda p: " ".join(p["sentences"] + list(p["summary"].values())), cfg.dedup)
    rm_papers = [p for p in papers if p["split"] in cfg.rm_splits]
    policy_papers = [p for p in papers if p["split"] not in cfg.rm_splits]
    rng.shuffle(rm_papers)
    rng.shuffle(policy_papers)

    def prompt_of(paper, aspect):
        doc = _fit_document(paper["sentences"], tokenizer, cfg.max_prompt_tokens)
        return f"{cfg.instruction.format(aspect=aspect)}\n\n{doc}\n\nSummary:"

    def other(paper, pool):
        """Another paper of the same split: a rejected text never leaks a text of another split
        (an evaluation demonstration must not be a reward-model or DPO training text)."""
        pool = [p for p in pool if p["id"] != paper["id"]]
        return rng.choice(pool) if pool else None

    n_rm_eval = max(1, int(len(rm_papers) * cfg.rm_eval_fraction))
    rm_pairs = []
    for split, pool in (("eval", rm_papers[:n_rm_eval]), ("train", rm_papers[n_rm_eval:])):
        for paper in pool:
            for aspect in [a for a in cfg.aspects if a in paper["summary"]]:
                rejected = paper.get("rejected", {}).get(aspect)
                for bad in [rejected] if rejected else corruptions(paper, aspect, other(paper, pool)):
                    rm_pairs.append({"id": f"{paper['id']}-{aspect}", "split": split, "prompt": prompt_of(paper, aspect),
                                     "chosen": " " + paper["summary"][aspect], "rejected": " " + bad})
    prompts = [{"id": f"{paper['id']}-{aspect}", "paper": paper, "aspect": aspect}
               for paper in policy_papers for aspect in [a for a in cfg.aspects if a in paper["summary"]]]
    n_train = len(prompts) - cfg.n_eval_prompts if cfg.n_train_prompts is None else cfg.n_train_prompts
    if n_train < 1 or cfg.n_eval_prompts + n_train > len(prompts):
        raise InputError(f"summaries data: {len(prompts)} prompts and {len(rm_pairs)} reward-model pairs; the config "
                         f"asks n_eval_prompts={cfg.n_eval_prompts}, n_train_prompts={cfg.n_train_prompts} and "
                         f"reward-model papers from splits {cfg.rm_splits}")
    prompts = [dict(p, split="eval" if i < cfg.n_eval_prompts else "train")
               for i, p in enumerate(prompts[: cfg.n_eval_prompts + n_train])]
    # a paper's summaries stay in one split: the training prompts of a paper that straddles the
    # eval/train boundary are dropped (its other summaries are rejected texts of each other);
    # DPO's rejected text then comes from a paper of the prompt's own split
    eval_papers = {p["paper"]["id"] for p in prompts if p["split"] == "eval"}
    kept = [p for p in prompts if p["split"] == "eval" or p["paper"]["id"] not in eval_papers]
    if len(kept) < len(prompts):
        log.info("summaries: %d training prompts dropped, their paper has evaluation prompts", len(prompts) - len(kept))
    prompts = kept
    pools = {"eval": [p for p in policy_papers if p["id"] in eval_papers],
             "train": [p for p in policy_papers if p["id"] not in eval_papers]}
    for p in prompts:
        paper, aspect = p.pop("paper"), p.pop("aspect")
        demo = " " + paper["summary"][aspect]
        rejected = (paper.get("rejected", {}).get(aspect)
                    or rng.choice(corruptions(paper, aspect, other(paper, pools[p["split"]]))))
        p.update(prompt=prompt_of(paper, aspect), demo=demo, rejected=" " + rejected,
                 demo_tokens=len(tokenizer(demo, add_special_tokens=False)["input_ids"]))
    # every text a model trains on: the policy's train prompts with their demonstration (SFT, RL) and
    # DPO's rejected summary; the reward model's pairs, chosen and rejected, per RM split
    groups = {split: [p["prompt"] + p["demo"] for p in prompts if p["split"] == split] for split in ("train", "eval")}
    groups["train"] += [p["prompt"] + p["rejected"] for p in prompts if p["split"] == "train"]
    groups |= {f"reward-model {split}": [r["prompt"] + r[side] for r in rm_pairs if r["split"] == split
                                         for side in ("chosen", "rejected")] for split in ("train", "eval")}
    largest = check_disjoint(groups, "summaries data", cfg.dedup)
    log.info("summaries: %d prompts (%d eval), %d reward-model pairs (%d eval)", len(prompts), cfg.n_eval_prompts,
             len(rm_pairs), sum(r["split"] == "eval" for r in rm_pairs))
    return prompts, rm_pairs, near_copy_report(paper_texts, kept_papers, largest, cfg.dedup,
                                               **split_sizes(prompts, "prompts"), **split_sizes(rm_pairs, "reward_model"))
