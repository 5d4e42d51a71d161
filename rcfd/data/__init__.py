"""The data stage (workflow/rules/data.smk): prompts, demonstrations and reward-model data, one
module per use case (movies, wiki, summaries).

Every task writes `prompts.jsonl` rows {id, split: train|eval, prompt, demo, demo_tokens, ...}:
the prompt, and the human demonstration that RCfD calibrates against.

No text is in two splits, nor a near-copy of one (rcfd.data.dedup: a text sharing >= 50% of its word
8-grams with another): near-copies among the source texts (reviews, articles, papers) are dropped
before splitting, keeping the first in the source's order, and `check_disjoint` refuses data in which
a text of one split (train, eval, reward-model train and held-out) is a near-copy of a text of
another. Each prepare step returns a report of both (written as the data step's metrics).
"""
