"""Config validation: the JSON schema (workflow/schemas/config.schema.yaml) plus the checks a
schema cannot express, each failing with one line that names the bad key, before any job runs."""

from __future__ import annotations

import math
import re
import string
from pathlib import Path

import yaml

from .methods import METHOD_REGEX, alpha_name, beta_name, configurable_method, parse_method


class ConfigError(ValueError):
    pass


# the `assets` entry that each offline data source reads (a hub source reads none)
SOURCE_ASSETS = {"vader_snippets": "movie_snippets", "imdb_csv": "imdb_reviews", "gensim_dump": "wiki_dump",
                 "aclsum": "aclsum"}


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


# the placeholders each text template of the config may use (anything else fails at .format())
TEMPLATE_FIELDS = {"judge question": {"text", "prompt", "completion", "example", "example_completion"},
                   "summary instruction": {"aspect"}}
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
MAX_STEPS = 10_000_000  # far beyond any run here or in the paper: a larger value is a typo
KL_SAMPLING_NEEDS = ("config key 'rl.kl_logprobs' 'sampling' (the default) at beta > 0: needs rl.top_p 1, "
                     "rl.old_logprobs 'loss' and rl.num_iterations 1 (the draw's distribution is then the policy the "
                     "loss trains); set rl.kl_logprobs: recompute otherwise")


def strict_validator(schema: dict):
    """The schema's validator, with "integer" meaning an int (jsonschema also takes 3.0)."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    return validators.extend(Draft202012Validator, type_checker=checker)(schema)


def schema_error(config: dict, schema_path: str | Path) -> str | None:
    """The most relevant schema violation as one line, or None if the config is valid."""
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(Path(schema_path).read_text())
    error = best_match(strict_validator(schema).iter_errors(config))
    if error is None:
        return None
    return f"config key '{_key(error.absolute_path)}': {error.message}"


def _walk(node, path=()):
    """(path, value) of every leaf of a nested config."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, i))
    else:
        yield path, node


def value_errors(config: dict) -> list[str]:
    """What holds for every value wherever it is: --config keys are not nested, numbers are finite,
    step counts plausible, hub ids look like hub ids (or name an existing local folder)."""
    errors = [f"config key '{k}': --config cannot set a nested key; put it in an overlay file and add it with "
              f"--configfile config.yaml overlay.yaml (e.g. {k.split('.')[0]}: {{...}})" for k in config if "." in str(k)]
    for path, value in _walk(config):
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f"config key '{_key(path)}': {value} is not a finite number")
        elif path and str(path[-1]).endswith("steps") and isinstance(value, int) and value > MAX_STEPS:
            errors.append(f"config key '{_key(path)}': {value} steps is implausible (more than {MAX_STEPS:,})")
        elif (path and path[-1] in ("id", "hub_id") and isinstance(value, str) and not HUB_ID.fullmatch(value)
              and not Path(value).is_dir()):  # a local folder stands in for a hub id (from_pretrained reads both)
            errors.append(f"config key '{_key(path)}': {value!r} is not a hub id (owner/name: letters, digits, . _ -) "
                          "nor an existing folder")
    for key in ("results_dir", "figures_dir", "resources_dir"):
        folder = str(config.get(key, "x")).strip()
        if folder in ("", "/", ".", "./") or Path(folder).resolve() == Path("/"):
            errors.append(f"config key '{key}': {folder!r} is not a folder to write results into (use e.g. 'results')")
    return errors


def template_errors(text: str, allowed: set[str], key: str) -> list[str]:
    """A text template's placeholders: balanced braces and names from `allowed` only."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as e:
        return [f"config key '{key}': not a valid template ({e}); a literal brace is written {{{{ or }}}}"]
    unknown = sorted(fields - allowed)
    if unknown:
        return [f"config key '{key}': unknown placeholder(s) {unknown}; it may use {sorted(allowed)}"]
    return []


def method_errors(task: str, t: dict) -> list[str]:
    """The task's method names (its `methods` and one per beta and alpha of the sweeps): each a
    method of rcfd.methods with sensible settings, and no two the same."""
    errors = []
    bad = [m for m in t.get("methods", []) if not configurable_method(str(m))]
    if bad:
        errors.append(f"config key '{task}.methods': {bad[0]!r} is not a method; expected base, sft, rcfd, rcfd2, "
                      "rcfd_shuffled, rcfd_energy, dpo, dpo_early, greedy, temp<t> or nucleus<p> (R_beta and R_alpha "
                      "come from 'betas' and 'alphas')")
    for m in t.get("methods", []):
        if m in bad:
            continue
        settings = dict(parse_method(str(m)).decoding)
        if not 0 < settings.get("top_p", 1) <= 1:
            errors.append(f"config key '{task}.methods': {m!r}: nucleus sampling needs 0 < p <= 1")
        if settings.get("temperature", 1) <= 0 and m != "greedy":
            errors.append(f"config key '{task}.methods': {m!r}: a temperature must be > 0 (greedy is 'greedy')")
    for key, name_of in (("betas", beta_name), ("alphas", alpha_name)):
        values = [v for v in t.get(key, []) if isinstance(v, (int, float)) and math.isfinite(v)]
        names = [name_of(v) for v in values]
        odd = [v for v, n in zip(values, names) if not re.fullmatch(METHOD_REGEX, n)]
        if odd:
            errors.append(f"config key '{task}.{key}': {odd[0]!r} makes the run name {name_of(odd[0])!r}; "
                          "write it as a plain decimal (e.g. 0.001)")
        twins = sorted({n for n in names if names.count(n) > 1})
        if twins:
            errors.append(f"config key '{task}.{key}': values {values} give the same run name twice ({twins[0]}); "
                          "they must differ in their first 6 significant digits")
    return errors


def batch_errors(task: str, t: dict) -> list[str]:
    """`processes` splits each global batch: it must divide it."""
    errors = []
    for section, batch in (("rl", lambda s: s.get("prompts_per_step", 8) * s.get("num_generations", 2)),
                           ("sft", lambda s: s.get("batch_size", 16)), ("dpo", lambda s: s.get("batch_size", 8))):
        s = t.get(section, {})
        processes = s.get("processes", 1)
        if isinstance(processes, int) and processes > 1 and batch(s) % processes:
            errors.append(f"config key '{task}.{section}.processes': {processes} processes cannot split the batch "
                          f"of {batch(s)}")
    return errors


def kl_errors(task: str, t: dict, algorithm: str) -> list[str]:
    """RLOO's KL log-probabilities read at the draws (`rl.kl_logprobs: sampling`, the default) hold
    only where the draw's distribution is the trained policy's: checked for a task with a beta > 0."""
    rl = t.get("rl", {})
    betas = [b for b in t.get("betas", []) if isinstance(b, (int, float)) and b > 0]
    if algorithm == "ppo" or not betas or rl.get("kl_logprobs", "sampling") != "sampling":
        return []
    if rl.get("top_p", 1) != 1 or rl.get("old_logprobs", "loss") != "loss" or rl.get("num_iterations", 1) != 1:
        return [KL_SAMPLING_NEEDS.replace("config key '", f"config key '{task}.", 1)]
    return []


def pair_length_errors(task: str, t: dict) -> list[str]:
    """A preference RM scores (document, completion) pairs and cuts only the document (rewards.encode):
    its max_length must hold the longest completion a policy may write beside a document of at
    least MIN_DOCUMENT_TOKENS (with 3 special tokens), counting one RM token per policy token."""
    from .rewards import MIN_DOCUMENT_TOKENS

    rm = t.get("reward_model", {})
    if not rm.get("score", {}).get("pair_input"):
        return []
    caps = {f"{task}.{s}.max_new_tokens": t.get(s, {}).get("max_new_tokens") for s in ("rl", "generate")}
    errors = []
    for section in ("score", "train"):
        length = rm.get(section, {}).get("max_length")
        for key, cap in caps.items():
            if isinstance(length, int) and isinstance(cap, int) and length < cap + MIN_DOCUMENT_TOKENS + 3:
                errors.append(f"config key '{task}.reward_model.{section}.max_length': {length} cannot hold a "
                              f"{cap}-token completion ({key}) beside {MIN_DOCUMENT_TOKENS} document tokens; "
                              f"use at least {cap + MIN_DOCUMENT_TOKENS + 3}")
    return errors


def gold_errors(config: dict) -> list[str]:
    """`gold_vs_proxy` follows RL methods of its task, at steps inside their training, with questions of its judge."""
    gold = config.get("gold_vs_proxy")
    if not gold or gold["task"] not in config["tasks"]:
        return []
    t = config.get(gold["task"], {})
    runs = list(t.get("methods", [])) + [beta_name(b) for b in t.get("betas", [])] + \
        [alpha_name(a) for a in t.get("alphas", [])]
    rl = [m for m in runs if re.fullmatch(METHOD_REGEX, str(m)) and parse_method(str(m)).kind == "rl"]
    errors = [f"config key 'gold_vs_proxy.methods': {m!r} is not an RL method of {gold['task']} ({', '.join(rl)})"
              for m in gold["methods"] if m not in rl]
    steps = t.get("rl", {}).get("steps", 0)
    errors += [f"config key 'gold_vs_proxy.snapshot_steps': {k} is not inside {gold['task']}'s training (1 to "
               f"rl.steps - 1 = {steps - 1})" for k in gold["snapshot_steps"] if not 0 < k < steps]
    questions = t.get("evaluate", {}).get("judge", {}).get("questions", {})
    errors += [f"config key 'gold_vs_proxy.questions': {q!r} is not a question of {gold['task']}.evaluate.judge"
               for q in gold["questions"] if q not in questions]
    return errors


def claims_errors(config: dict) -> list[str]:
    """Each claim's criteria name runs of their use case (its methods, sweeps or the demonstrations)."""
    errors = []
    for name, claim in config.get("claims", {}).items():
        for task, criteria in claim.items():
            if task == "claim" or task not in config["tasks"]:
                continue
            t = config.get(task, {})
            runs = {"demonstrations", *t.get("methods", []), *(beta_name(b) for b in t.get("betas", [])),
                    *(alpha_name(a) for a in t.get("alphas", []))}
            alternatives = criteria["any"] if isinstance(criteria, dict) else [criteria]
            for i, c in enumerate(c for alternative in alternatives for c in alternative):
                kind = next((k for k in ("lowest", "nearest") if k in c), None)
                if kind and not c.get("among"):
                    errors.append(f"config key 'claims.{name}.{task}[{i}]': '{kind}' compares with the runs of "
                                  "'among'; none given")
                methods = [c["method"]] if isinstance(c["method"], str) else c["method"]
                for m in [*methods, c.get("vs", "demonstrations"), *c.get("among", [])]:
                    if m not in runs:
                        errors.append(f"config key 'claims.{name}.{task}[{i}]': {m!r} is not a run of {task} "
                                      f"({', '.join(sorted(runs))})")
    return errors


def predictability_tasks(config: dict) -> dict[str, dict]:
    """The tasks of `predictability` (rule predictability), by prompt length n: its use case at the
    configured length is the task itself (config unchanged: the default runs are shared), any other
    length a task of its own, `<task>_p<n>`, with the predictability methods (`at_prompt_length`)."""
    spec = config.get("predictability")
    if not spec:
        return {}
    task, base = spec["task"], config[spec["task"]]
    return {(task if n == base["data"]["prompt_tokens"] else f"{task}_p{n}"):
            (base if n == base["data"]["prompt_tokens"] else at_prompt_length(base, n, spec["methods"]))
            for n in spec["prompt_tokens"]}


def at_prompt_length(base: dict, n: int, methods: list[str]) -> dict:
    """A movie-review task's config with n-token prompts and `methods` (beta<b> names become its betas).
    Only the prompt/demonstration boundary moves: the demonstration stays the next max_demo_tokens,
    and the reward model trains on, and reads, prefixes as much longer (rm_prefix_tokens and its
    max_length shift with n), so no length is cut differently."""
    import copy

    d = n - base["data"]["prompt_tokens"]
    t = copy.deepcopy(base)
    t["data"]["prompt_tokens"] = n
    if "rm_prefix_tokens" in base["data"]:  # else the reward model trains on whole reviews
        t["data"]["rm_prefix_tokens"] = base["data"]["rm_prefix_tokens"] + d
    for section in ("train", "score"):
        if "max_length" in t["reward_model"].get(section, {}):
            t["reward_model"][section]["max_length"] += d
    parsed = [parse_method(m) for m in methods]
    t["methods"] = [m.name for m in parsed if m.objective != "reward"]
    t["betas"] = [m.beta for m in parsed if m.objective == "reward"]
    t["alphas"] = []
    t["evaluate"].pop("judge", None)  # A, R² and the decomposition read rewards only
    return t


def predictability_errors(config: dict) -> list[str]:
    """`predictability` names its use case's lengths and methods sensibly, and each of its tasks is
    a valid task (before any job)."""
    spec = config.get("predictability")
    if not spec:
        return []
    errors = []
    if spec["task"] not in config:
        errors.append(f"config key 'predictability.task': {spec['task']!r} has no section in this config")
    bad = [m for m in spec["methods"] if not re.fullmatch(METHOD_REGEX, str(m)) or m == "demonstrations"
           or (re.fullmatch(METHOD_REGEX, str(m)) and parse_method(m).algorithm != "rloo")]
    if bad:
        errors.append(f"config key 'predictability.methods': {bad[0]!r} is not a method to run (base, sft, rcfd, "
                      "rcfd_energy, beta<b>, ...)")
    elif "base" not in spec["methods"]:
        errors.append("config key 'predictability.methods': needs 'base' (its samples measure how much the prompt "
                      "predicts its demonstration's reward)")
    elif any(parse_method(m).alpha for m in spec["methods"]):
        errors.append("config key 'predictability.methods': R_alpha has no length reward in this use case")
    if errors or spec["task"] not in config:
        return errors
    algorithm = config.get("algorithm", "rloo")
    for n in spec["prompt_tokens"]:
        t, name = at_prompt_length(config[spec["task"]], n, spec["methods"]), f"{spec['task']}_p{n}"
        own = method_errors(name, t) + batch_errors(name, t) + kl_errors(name, t, algorithm) \
            + energy_errors(name, t, algorithm)
        errors += [e.replace(f"config key '{name}.", f"config key '{spec['task']}.", 1)
                   .replace("': ", f"' (predictability, {n}-token prompts): ", 1) for e in own]
    return errors


def energy_errors(task: str, t: dict, algorithm: str) -> list[str]:
    """RCfD's energy score corrects RLOO's leave-one-out baseline, which needs 3 samples a prompt."""
    if "rcfd_energy" in t.get("methods", []) and algorithm == "rloo" and t.get("rl", {}).get("num_generations", 2) < 3:
        return [f"config key '{task}.rl.num_generations': rcfd_energy under RLOO needs at least 3 generations per "
                "prompt (its leave-one-out correction, rewards.rcfd_energy_reward)"]
    return []


def semantic_errors(config: dict) -> list[str]:
    errors = value_errors(config)
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
        errors += energy_errors(task, t, config.get("algorithm", "rloo"))
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
        errors += method_errors(task, t) + batch_errors(task, t) + kl_errors(task, t, config.get("algorithm", "rloo"))
        judge = t.get("evaluate", {}).get("judge", {})
        for name, question in judge.get("questions", {}).items():
            errors += template_errors(str(question), TEMPLATE_FIELDS["judge question"],
                                      f"{task}.evaluate.judge.questions.{name}")
        for name, variants in judge.get("validation", {}).get("variants", {}).items():
            if name not in judge.get("questions", {}):
                errors.append(f"config key '{task}.evaluate.judge.validation.variants.{name}': not a question of "
                              f"{task}.evaluate.judge.questions ({', '.join(judge.get('questions', {}))})")
            for variant, template in variants.items():
                errors += template_errors(str(template), TEMPLATE_FIELDS["judge question"],
                                          f"{task}.evaluate.judge.validation.variants.{name}.{variant}")
        if "instruction" in t.get("data", {}):
            errors += template_errors(str(t["data"]["instruction"]), TEMPLATE_FIELDS["summary instruction"],
                                      f"{task}.data.instruction")
        if any(m.startswith("dpo") for m in t.get("methods", [])) and ("sft" not in t.get("methods", []) or "dpo" not in t):
            errors.append(f"config key '{task}.methods': DPO trains from the SFT policy, so it needs 'sft' in "
                          f"{task}.methods and a '{task}.dpo' section")
        errors += pair_length_errors(task, t)
        if task == "wiki" and "generate" in t and "data" in t:
            gen, demo = t["generate"].get("max_new_tokens"), t["data"].get("eval_demo_tokens")
            if gen != demo:
                errors.append(f"config key 'wiki.generate.max_new_tokens': {gen} must equal wiki.data.eval_demo_tokens "
                              f"({demo}), so that generations and human text are compared at the same length")
    # after the tasks' own: a bad method list first
    return errors + gold_errors(config) + claims_errors(config) + predictability_errors(config)


class _UniqueKeys(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{key_node.start_mark.line + 1}: key {key!r} appears twice in one mapping "
                                  f"(first at line {seen[key]}); the first value would be silently dropped")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def check_config_files(paths) -> None:
    """The config files as written, before their values are merged: UTF-8, YAML, a mapping at the
    top, no key twice. One line naming the file (and line) of the first problem."""
    for path in paths:
        try:
            text = Path(path).read_bytes().decode("utf-8")
            data = yaml.load(text, Loader=_UniqueKeys)
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
        except ConfigError as e:
            raise ConfigError(f"{path}:{e}") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of config keys, got {type(data).__name__}")


def check_config(config: dict, schema_path: str | Path) -> None:
    """Validate with Snakemake's validator (which also fills schema defaults); raise one line."""
    from snakemake.utils import validate

    nested = [k for k in config if "." in str(k)]
    if nested:  # before the schema, which would only say that the key is not allowed
        raise ConfigError(value_errors({k: config[k] for k in nested})[0])
    try:
        validate(config, str(schema_path))
    except Exception:  # Snakemake wraps jsonschema's multi-line report; reduce it to one line
        raise ConfigError(schema_error(config, schema_path) or "config does not match the schema") from None
    errors = [e for e in [schema_error(config, schema_path)] if e] + semantic_errors(config)
    if errors:
        raise ConfigError(errors[0])
