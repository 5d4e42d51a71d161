import pytest

from rcfd.data import MovieDataConfig, prepare_movies, read_vader_snippets, split_prompt
from rcfd.models import load_tokenizer
from rcfd.utils import InputError

from .conftest import CORPUS


def _reviews(n_pos=60, n_neg=40):
    rows = [{"id": f"p{i}", "rating": 2.0, "text": CORPUS[i]} for i in range(n_pos)]
    rows += [{"id": f"n{i}", "rating": -2.0, "text": CORPUS[-1 - i]} for i in range(n_neg)]
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
    prompts, rm = prepare_movies(cfg, _reviews(), tok)
    assert [p["split"] for p in prompts].count("eval") == 10 and len(prompts) == 30
    assert all(p["rating"] > cfg.positive_threshold for p in prompts)
    assert {p["id"] for p in prompts}.isdisjoint({r["id"] for r in rm})  # the RM never sees a demo
    assert "z" not in {r["id"] for r in rm}  # ambiguous ratings are unused
    assert {r["label"] for r in rm} == {0, 1} and {r["split"] for r in rm} == {"train", "eval"}
    assert prepare_movies(cfg, _reviews(), tok) == (prompts, rm)


def test_prepare_movies_says_when_data_is_short(tiny_models):
    tok = load_tokenizer(tiny_models["llama"])
    cfg = MovieDataConfig(prompt_tokens=4, n_train_prompts=500, n_eval_prompts=10)
    with pytest.raises(InputError, match="n_train_prompts"):
        prepare_movies(cfg, _reviews(), tok)
