"""Wikipedia (paper use case 1): consecutive windows of an article's text, the first
`prompt_tokens` policy tokens are the prompt, the following tokens the demonstration. Train
demonstrations are `train_demo_tokens` long (the RL generation length); eval demonstrations are
`eval_demo_tokens` long, so that generations are evaluated beyond the training length."""

from __future__ import annotations

import bz2
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..utils import InputError, log
from .dedup import NearCopyConfig, check_disjoint, near_copy_report, split_sizes, without_near_copies


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
