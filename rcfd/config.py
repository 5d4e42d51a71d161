"""Config validation: the JSON schema (workflow/schemas/config.schema.yaml) plus the checks a
schema cannot express, each failing with one line that names the bad key, before any job runs."""

from __future__ import annotations

from pathlib import Path

import yaml

from .methods import configurable_method


class ConfigError(ValueError):
    pass


# the `assets` entry that each offline data source reads (a hub source reads none)
SOURCE_ASSETS = {"vader_snippets": "movie_snippets", "imdb_csv": "imdb_reviews", "gensim_dump": "wiki_dump",
                 "aclsum": "aclsum"}


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def schema_error(config: dict, schema_path: str | Path) -> str | None:
    """The most relevant schema violation as one line, or None if the config is valid."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(Path(schema_path).read_text())
    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return None
    return f"config key '{_key(error.absolute_path)}': {error.message}"


def semantic_errors(config: dict) -> list[str]:
    errors = []
    for task in config["tasks"]:
        if task not in config:
            errors.append(f"config key 'tasks': task {task!r} is enabled but has no '{task}' section")
    names = [m["name"] for m in config["models"].values() if m["source"] != "hub"]
    if len(names) != len(set(names)):
        errors.append(f"config key 'models': model names must be unique, got {names}")
    for task in config["tasks"]:
        t = config.get(task, {})
        rl = t.get("rl", {})
        if rl.get("num_generations", 2) < 2:
            errors.append(f"config key '{task}.rl.num_generations': RLOO needs at least 2 generations per prompt")
        if t.get("policy", "policy") not in config["models"]:
            errors.append(f"config key '{task}.policy': {t['policy']!r} is not a key of 'models' "
                          f"({', '.join(config['models'])})")
        for section in ("judge", "mauve"):
            key = t.get("evaluate", {}).get(section, {}).get("model")
            if key is not None and key not in config["models"]:
                errors.append(f"config key '{task}.evaluate.{section}.model': {key!r} is not a key of 'models' "
                              f"({', '.join(config['models'])})")
        asset = SOURCE_ASSETS.get(t.get("data", {}).get("source"))
        if asset and asset not in config.get("assets", {}):
            errors.append(f"config key '{task}.data.source': {t['data']['source']!r} reads the asset 'assets.{asset}', "
                          "which the config does not define")
        bad = [m for m in t.get("methods", []) if not configurable_method(str(m))]
        if bad:
            errors.append(f"config key '{task}.methods': {bad[0]!r} is not a method; expected base, sft, rcfd, rcfd2, "
                          "rcfd_shuffled, dpo, dpo_early, greedy, temp<t> or nucleus<p> (R_beta and R_alpha come from "
                          "'betas' and 'alphas')")
        betas = t.get("betas", [])
        if len(set(betas)) != len(betas):
            errors.append(f"config key '{task}.betas': duplicate values {betas}")
        if any(m.startswith("dpo") for m in t.get("methods", [])) and ("sft" not in t.get("methods", []) or "dpo" not in t):
            errors.append(f"config key '{task}.methods': DPO trains from the SFT policy, so it needs 'sft' in "
                          f"{task}.methods and a '{task}.dpo' section")
        if task == "wiki" and "generate" in t and "data" in t:
            gen, demo = t["generate"].get("max_new_tokens"), t["data"].get("eval_demo_tokens")
            if gen != demo:
                errors.append(f"config key 'wiki.generate.max_new_tokens': {gen} must equal wiki.data.eval_demo_tokens "
                              f"({demo}), so that generations and human text are compared at the same length")
    return errors


def check_config(config: dict, schema_path: str | Path) -> None:
    """Validate with Snakemake's validator (which also fills schema defaults); raise one line."""
    from snakemake.utils import validate

    try:
        validate(config, str(schema_path))
    except Exception:  # Snakemake wraps jsonschema's multi-line report; reduce it to one line
        raise ConfigError(schema_error(config, schema_path) or "config does not match the schema") from None
    errors = semantic_errors(config)
    if errors:
        raise ConfigError(errors[0])
