import random
import re

import pytest

from rcfd.data.movies import MovieDataConfig, prepare_movies, read_vader_snippets, split_prompt
from rcfd.models import load_tokenizer
from rcfd.utils import InputError

from .conftest import CORPUS

WORDS = sorted({w.strip(".") for text in CORPUS for w in text.split()})


def _distinct_texts(n: int, seed: int = 0) -> list[str]:
    """n texts of the tiny tokenizer's words, no two near-copies (random orders of 14 words share no 8-gram)."""
    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, 14)) + "." for _ in range(n)]


def _reviews(n_pos=60, n_neg=40):
    texts = _distinct_texts(n_pos + n_neg)
    rows = [{"id": f"p{i}", "rating": 2.0, "text": texts[i]} for i in range(n_pos)]
    rows += [{"id": f"n{i}", "rating": -2.0, "text": texts[n_pos + i]} for i in range(n_neg)]
    rows += [{"id": "z", "rating": 0.1, "text": "ambiguous review text that is long enough"}]
    return rows


def test_read_vader_snippets(tmp_path):
    f = tmp_path / "snippets.txt"
    f.write_text("1\t2.5\tA fine film.\r\n2\t-1.25\tDull.\r\n\n", encoding="utf-8")
    assert read_vader_snippets(f) == [{"id": "1", "rating": 2.5, "text": "A fine film."},
                                      {"id": "2", "rating": -1.25, "text": "Dull."}]
    f.write_text("1\t2.5\tok\n2\tgood\tbad rating\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"snippets.txt:2: rating 'good'"):
        read_vader_snippets(f)


def test_split_prompt_keeps_the_text(tiny_models):
    tok = load_tokenizer(tiny_models["llama"])
    text = "This quiet film was wonderful and the cast kept me smiling."
    prompt, demo, n_demo = split_prompt(text, tok, 4)
    assert prompt + demo == text
    assert len(tok(prompt, add_special_tokens=False)["input_ids"]) == 4
    assert n_demo == len(tok(text, add_special_tokens=False)["input_ids"]) - 4
    assert split_prompt("short", tok, 40) is None


def test_prepare_movies_splits_are_disjoint_and_deterministic(tiny_models):
    tok = load_tokenizer(tiny_models["llama"])
    cfg = MovieDataConfig(prompt_tokens=4, min_demo_tokens=2, n_train_prompts=20, n_eval_prompts=10,
                          rm_eval_fraction=0.25, seed=3)
    prompts, rm, report = prepare_movies(cfg, _reviews(), tok)
    assert [p["split"] for p in prompts].count("eval") == 10 and len(prompts) == 30
    assert all(p["rating"] > cfg.positive_threshold for p in prompts)
    assert {p["id"] for p in prompts}.isdisjoint({r["id"] for r in rm})  # the RM never sees a demo
    assert "z" not in {r["id"] for r in rm}  # ambiguous ratings are unused
    assert {r["label"] for r in rm} == {0, 1} and {r["split"] for r in rm} == {"train", "eval"}
    assert prepare_movies(cfg, _reviews(), tok) == (prompts, rm, report)
    assert report["near_copies_dropped"] == 0 and report["prompts_eval"] == 10 and report["source_texts"] == 101


def test_prepare_movies_says_when_data_is_short(tiny_models):
    tok = load_tokenizer(tiny_models["llama"])
    cfg = MovieDataConfig(prompt_tokens=4, n_train_prompts=500, n_eval_prompts=10)
    with pytest.raises(InputError, match="n_train_prompts"):
        prepare_movies(cfg, _reviews(), tok)


DUMP = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <page><title>Aardvark</title><ns>0</ns><id>7</id><revision><text>{{Infobox animal|name=Aardvark}}
The '''aardvark''' is a medium-sized, burrowing, nocturnal [[mammal]] native to [[Africa|the African continent]].&lt;ref&gt;Some book, p. 3.&lt;/ref&gt; It is the only living species of its order and it eats ants and termites at night.
[[File:Aardvark.jpg|thumb|An aardvark]]
== Diet ==
* a list item that is not prose
It digs with its strong claws for ants, and its long sticky tongue picks them up by the hundred every night.
[[Category:Mammals]]</text></revision></page>
  <page><title>AA</title><ns>0</ns><id>8</id><redirect title="Aardvark"/><revision><text>#REDIRECT [[Aardvark]]</text></revision></page>
  <page><title>Talk:Aardvark</title><ns>1</ns><id>9</id><revision><text>A talk page with enough words to pass the paragraph filter of this reader for sure.</text></revision></page>
</mediawiki>"""


def test_read_wiki_dump_keeps_article_prose_only(tmp_path):
    import bz2

    from rcfd.data.wiki import read_wiki_dump

    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(bz2.compress(DUMP.encode()))
    (article,) = read_wiki_dump(path, min_paragraph_words=10)  # redirect and talk page dropped
    assert (article["id"], article["title"]) == ("7", "Aardvark")
    assert article["text"].split("\n") == [
        "The aardvark is a medium-sized, burrowing, nocturnal mammal native to the African continent. It is the "
        "only living species of its order and it eats ants and termites at night.",
        "It digs with its strong claws for ants, and its long sticky tongue picks them up by the hundred every night.",
    ]
    bad = tmp_path / "bad.xml"
    bad.write_text("<mediawiki><page>")
    with pytest.raises(InputError, match="bad.xml"):
        read_wiki_dump(bad)


def test_prepare_wiki_segments(tiny_models):
    from rcfd.data.wiki import WikiDataConfig, prepare_wiki
    from rcfd.models import load_tokenizer

    tok = load_tokenizer(tiny_models["llama"])
    articles = [{"id": str(i), "title": f"t{i}", "text": " ".join(_distinct_texts(20, seed=i))} for i in range(6)]
    cfg = WikiDataConfig(prompt_tokens=8, train_demo_tokens=6, eval_demo_tokens=12, n_train_prompts=10,
                         n_eval_prompts=4, max_segments_per_article=3)
    rows, _ = prepare_wiki(cfg, articles, tok)
    assert rows == prepare_wiki(cfg, list(reversed(articles)), tok)[0]  # deterministic, order-free
    train, held = [r for r in rows if r["split"] == "train"], [r for r in rows if r["split"] == "eval"]
    assert (len(train), len(held)) == (10, 4)
    assert not {r["title"] for r in train} & {r["title"] for r in held}  # disjoint articles
    for r in rows:
        text = next(a["text"] for a in articles if a["title"] == r["title"])
        assert r["prompt"] + r["demo"] in text  # a verbatim span
        assert len(tok(r["prompt"], add_special_tokens=False)["input_ids"]) == 8
        assert r["demo_tokens"] == (12 if r["split"] == "eval" else 6)
    with pytest.raises(InputError, match="the config asks"):
        prepare_wiki(WikiDataConfig(prompt_tokens=8, n_train_prompts=10_000, n_eval_prompts=4), articles, tok)


def _aclsum_wheel(path, n_papers=12):
    import json
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for split, start in (("train", 0), ("val", n_papers), ("test", 2 * n_papers)):
            rows = [{"id": f"P{i}", "title": f"paper {i}",
                     "summary": {a: f"The {a} of paper {i} is told in a short human sentence." for a in
                                 ("challenge", "approach", "outcome")},
                     "sentences": {"abstract": [f"We study problem {i} , in depth .", "Results improve by 2 % ."]}}
                    for i in range(start, start + n_papers)]
            z.writestr(f"aclsum/dataset/{split}.jsonl", "\n".join(json.dumps(r) for r in rows))
    return path


def test_prepare_summaries(tmp_path, tiny_models):
    from rcfd.data.summaries import SummaryDataConfig, prepare_summaries, read_aclsum

    papers = read_aclsum(_aclsum_wheel(tmp_path / "aclsum.zip"))
    assert len(papers) == 36 and papers[0]["sentences"][0] == "We study problem 0, in depth."  # detokenised
    tok = load_tokenizer(tiny_models["llama"])
    cfg = SummaryDataConfig(n_eval_prompts=9, max_prompt_tokens=64)
    prompts, pairs, _ = prepare_summaries(cfg, papers, tok)
    assert (prompts, pairs) == prepare_summaries(cfg, list(reversed(papers)), tok)[:2]
    assert len(prompts) == 24 * 3 and sum(p["split"] == "eval" for p in prompts) == 9
    rm_papers = {p["id"].rsplit("-", 1)[0] for p in pairs}
    assert rm_papers == {f"P{i}" for i in range(12)}  # ACLSum's train papers train the RM only
    assert not rm_papers & {p["id"].rsplit("-", 1)[0] for p in prompts}
    first = prompts[0]
    aspect = first["id"].rsplit("-", 1)[1]
    assert first["prompt"].startswith(f"Summarize the {aspect} of this paper in one sentence.")
    assert first["prompt"].endswith("Summary:") and first["demo"].startswith(" The ")
    assert first["rejected"] != first["demo"]
    assert {p["split"] for p in pairs} == {"train", "eval"} and all(p["chosen"] != p["rejected"] for p in pairs)
    with pytest.raises(InputError, match="aclsum"):
        read_aclsum(_bad_zip(tmp_path))


@pytest.mark.parametrize("n_eval", [9, 10])  # 10: one paper's aspects straddle the eval/train boundary
def test_summaries_no_text_crosses_splits(tmp_path, tiny_models, n_eval):
    """No evaluation text is a training text anywhere: not in the reward model's data (chosen or
    rejected, any RM split), not as a training prompt's rejected (DPO) text; the RM's own eval
    pairs draw their rejected texts from RM-eval papers only."""
    from rcfd.data.summaries import SummaryDataConfig, prepare_summaries, read_aclsum

    papers = read_aclsum(_aclsum_wheel(tmp_path / "aclsum.zip"))
    prompts, pairs, _ = prepare_summaries(SummaryDataConfig(n_eval_prompts=n_eval, max_prompt_tokens=64), papers,
                                          load_tokenizer(tiny_models["llama"]))
    summaries = {p["id"]: {s.strip() for s in p["summary"].values()} for p in papers}
    paper_of = {p["id"]: p["id"].rsplit("-", 1)[0] for p in prompts + pairs}
    eval_texts = set().union(*(summaries[paper_of[p["id"]]] for p in prompts if p["split"] == "eval"))
    rm_texts = {r[k].strip() for r in pairs for k in ("chosen", "rejected")}
    train_texts = {p[k].strip() for p in prompts if p["split"] == "train" for k in ("demo", "rejected")}
    assert eval_texts and not eval_texts & rm_texts and not eval_texts & train_texts
    policy_texts = {p[k].strip() for p in prompts for k in ("demo", "rejected")}
    assert not policy_texts & rm_texts  # the RM never sees a policy paper's summary
    rm_eval = set().union(*(summaries[paper_of[r["id"]]] for r in pairs if r["split"] == "eval"))
    assert not rm_eval & {r[k].strip() for r in pairs if r["split"] == "train" for k in ("chosen", "rejected")}
    assert sum(p["split"] == "eval" for p in prompts) == n_eval
    train_papers = {paper_of[p["id"]] for p in prompts if p["split"] == "train"}
    assert not train_papers & {paper_of[p["id"]] for p in prompts if p["split"] == "eval"}


def _bad_zip(tmp_path):
    import zipfile

    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.txt", "nothing")
    return path


def _imdb_csv(path, rows):
    import csv

    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "source"])
        w.writerows(rows)
    return path


def test_read_imdb_csv_strips_tags_and_keeps_imdb_rows(tmp_path):
    from rcfd.data.movies import read_imdb_csv

    path = _imdb_csv(tmp_path / "reviews.csv", [
        ["Great  film.<br /><br />Loved it &amp; the <i>score</i>.", "1", "imdb"],
        ["A snippet.", "1", "rotten_tomatoes"],
        ["Dull,\nslow.", "0", "imdb"]])
    assert read_imdb_csv(path) == [
        {"id": "imdb0", "rating": 1.0, "text": "Great film. Loved it & the score ."},
        {"id": "imdb2", "rating": -1.0, "text": "Dull, slow."}]
    with pytest.raises(InputError, match=r"reviews.csv: row 2: label 'x'"):
        read_imdb_csv(_imdb_csv(path, [["text", "x", "imdb"]]))
    (tmp_path / "other.csv").write_text("body,label\nhi,1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"other.csv: missing column\(s\) \['source', 'text'\]"):
        read_imdb_csv(tmp_path / "other.csv")


def test_prepare_movies_drops_duplicates_cuts_demos_and_prefixes_rm_text(tiny_models):
    from rcfd.data.movies import normalised

    tok = load_tokenizer(tiny_models["llama"])
    reviews = [dict(r, text=f"Review {i}: {r['text']}") for i, r in enumerate(_reviews())]  # distinct from the start
    # the same texts again, as other reviews, in another case and spacing: never used twice
    reviews += [dict(r, id=r["id"] + "dup", text="  " + r["text"].upper().replace(" ", "   ")) for r in reviews[:80]]
    cfg = MovieDataConfig(prompt_tokens=3, min_demo_tokens=2, max_demo_tokens=9, long_demos="cut", rm_prefix_tokens=12,
                          n_train_prompts=20, n_eval_prompts=10, rm_eval_fraction=0.25, seed=1)
    prompts, rm, _ = prepare_movies(cfg, reviews, tok)
    texts = [p["prompt"] + p["demo"] for p in prompts] + [r["text"] for r in rm]
    assert len({normalised(t) for t in texts}) == len(texts)
    originals = {r["id"]: r["text"] for r in reviews}
    for p in prompts:  # the demonstration is the review's continuation, cut at the cap
        assert originals[p["id"]].startswith(p["prompt"] + p["demo"]) and p["demo_tokens"] == 9
        assert len(tok(p["prompt"] + p["demo"], add_special_tokens=False)["input_ids"]) == 12
    for r in rm:  # the RM trains on prefixes of the length it scores
        assert originals[r["id"]].startswith(r["text"])
        assert len(tok(r["text"], add_special_tokens=False)["input_ids"]) <= 12
    assert any(len(r["text"]) < len(originals[r["id"]]) for r in rm)
    dropped = prepare_movies(MovieDataConfig(prompt_tokens=3, min_demo_tokens=2, max_demo_tokens=60, long_demos="drop",
                                             n_train_prompts=2, n_eval_prompts=2), reviews, tok)[0]
    assert all(originals[p["id"]] == p["prompt"] + p["demo"] for p in dropped)  # whole short reviews only


def test_check_disjoint_names_the_text_and_both_splits():
    from rcfd.data.dedup import check_disjoint

    assert check_disjoint({"train": ["a b", "c"], "eval": ["d"]}, "x data") == 0
    with pytest.raises(InputError, match=r"x data: the text 'c d'\.\.\. is in both train and eval \('C  d'"):
        check_disjoint({"train": ["a", "c d"], "eval": ["C  d"]}, "x data")


def _word_8grams(text):
    """The definition, written out: lower-cased words, every run of 8."""
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + 8]) for i in range(len(words) - 7)}


def test_planted_near_copies_are_refused_across_splits_and_dropped_before_splitting(tiny_models):
    """A re-posted review (the same opening, another last sentence) shares most of its 8-grams with
    the original: the split check refuses it, and the data step keeps only the first of the two."""
    from rcfd.data.dedup import check_disjoint

    original = _distinct_texts(1, seed=7)[0] + " " + _distinct_texts(1, seed=8)[0]  # 28 words: 21 8-grams
    reposted = original.rsplit(" ", 5)[0] + " " + " ".join(WORDS[:5]) + "!"  # its last 5 words changed: 16 of 21 kept
    shared = len(_word_8grams(original) & _word_8grams(reposted)) / len(_word_8grams(reposted))
    assert shared >= 0.5
    with pytest.raises(InputError, match=rf"shares {shared:.0%} of its word 8-grams with a text of train and eval"):
        check_disjoint({"train": [original], "eval": [reposted]}, "x data")
    unrelated = " ".join(original.split()[:10]) + " " + _distinct_texts(1, seed=9)[0]  # 3 of 17 8-grams shared
    assert 0 < check_disjoint({"train": [original], "eval": [unrelated]}, "x data") < 0.5

    tok = load_tokenizer(tiny_models["llama"])
    reviews = _reviews()
    planted = [dict(r, id=r["id"] + "re", text=r["text"][:-1] + " " + r["text"].split()[0] + "!") for r in reviews[:30]]
    cfg = MovieDataConfig(prompt_tokens=3, min_demo_tokens=2, n_train_prompts=20, n_eval_prompts=10,
                          rm_eval_fraction=0.25)
    prompts, rm, report = prepare_movies(cfg, reviews[:15] + planted + reviews[15:], tok)
    assert report["near_copies_dropped"] == 30 and report["source_texts"] == len(reviews) + 30
    kept = {p["id"] for p in prompts} | {r["id"] for r in rm}
    assert not {r["id"] for r in planted[:15]} & kept  # a copy after its original goes ...
    assert not {r["id"] for r in reviews[15:30]} & kept  # ... and an original after its copy
    evaluation = [p["prompt"] + p["demo"] for p in prompts if p["split"] == "eval"]
    training = [p["prompt"] + p["demo"] for p in prompts if p["split"] == "train"] + [r["text"] for r in rm]
    worst = max(len(_word_8grams(e) & _word_8grams(t)) / max(1, min(len(_word_8grams(e)), len(_word_8grams(t))))
                for e in evaluation for t in training)
    assert worst < 0.5 and report["largest_cross_split_overlap"] == pytest.approx(worst, abs=1e-4)


@pytest.mark.parametrize("task", ["movies", "wiki", "summaries"])
def test_no_text_is_in_two_splits(task, tiny_models, tmp_path):
    """Every use case's prepared data: no prompt + demonstration text in two splits, and none in
    the reward model's data (`check_disjoint` runs inside each prepare step; checked here again)."""
    from rcfd.data import summaries, wiki
    from rcfd.data.movies import normalised

    tok = load_tokenizer(tiny_models["llama"])
    if task == "movies":
        reviews = _reviews() + [dict(r, id=r["id"] + "b") for r in _reviews()]  # every text twice
        prompts, rm, _ = prepare_movies(MovieDataConfig(prompt_tokens=3, min_demo_tokens=2, n_train_prompts=20,
                                                        n_eval_prompts=10, rm_eval_fraction=0.25), reviews, tok)
        rm_texts = [r["text"] for r in rm]
    elif task == "wiki":
        articles = [{"id": str(i), "title": f"t{i}", "text": " ".join(_distinct_texts(20, seed=i))} for i in range(6)]
        prompts, _ = wiki.prepare_wiki(wiki.WikiDataConfig(prompt_tokens=8, train_demo_tokens=6, eval_demo_tokens=12,
                                                           n_train_prompts=10, n_eval_prompts=4), articles, tok)
        rm_texts = []
    else:
        papers = summaries.read_aclsum(_aclsum_wheel(tmp_path / "aclsum.zip"))
        prompts, pairs, _ = summaries.prepare_summaries(summaries.SummaryDataConfig(n_eval_prompts=9, max_prompt_tokens=64),
                                                   papers, tok)
        rm_texts = [r["prompt"] + r["chosen"] for r in pairs]
    train, held = ({normalised(p["prompt"] + p["demo"]) for p in prompts if p["split"] == s} for s in ("train", "eval"))
    assert train and held and not train & held
    assert not (train | held) & {normalised(t) for t in rm_texts}
