"""The data steps (workflow/rules/data.smk): each use case's prompts, demonstrations and reward-model data."""

from __future__ import annotations

from ..utils import from_params, write_json, write_jsonl


def _prepare_task(a, config_cls, key: str, read, prepare) -> None:
    """What every prepare step does: its data config from the params, the source read (offline
    asset or hub), prompts (and reward-model data, where the task has some) written, and the
    step's report (near-copies dropped, split sizes) as its metrics."""
    from ..models import load_tokenizer

    cfg = from_params(config_cls, a.params, key)
    *out, report = prepare(cfg, read(cfg), load_tokenizer(a.policy))
    write_jsonl(a.prompts, out[0])
    if len(out) == 2:
        write_jsonl(a.rm_data, out[1])
    write_json(a.metrics, report)


def step_prepare_movies(a) -> None:
    """Movie-review prompts + demonstrations, and the reward model's labelled reviews."""
    from . import movies

    readers = {"imdb_csv": lambda cfg: movies.read_imdb_csv(a.source),
               "vader_snippets": lambda cfg: movies.read_vader_snippets(a.source), "hub": movies.read_hub_reviews}
    _prepare_task(a, movies.MovieDataConfig, "movies.data", lambda cfg: readers[cfg.source](cfg), movies.prepare_movies)


def step_prepare_wiki(a) -> None:
    """Wikipedia prompt/continuation segments (use case 1); the continuation is the demonstration."""
    from . import wiki

    _prepare_task(a, wiki.WikiDataConfig, "wiki.data", lambda cfg: wiki.read_wiki_dump(a.source, cfg.min_paragraph_words)
                  if cfg.source == "gensim_dump" else wiki.read_hub_wiki(cfg), wiki.prepare_wiki)


def step_prepare_summaries(a) -> None:
    """Summarisation prompts + demonstrations (+ a rejected summary for DPO), and preference pairs for the RM."""
    from . import summaries

    _prepare_task(a, summaries.SummaryDataConfig, "summaries.data", lambda cfg: summaries.read_aclsum(a.source)
                  if cfg.source == "aclsum" else summaries.read_hub_tldr(cfg), summaries.prepare_summaries)
