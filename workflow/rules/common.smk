# Helpers shared by the rules: config validation, paths, per-rule parameters.
import json
import os
import shlex

from rcfd.config import SOURCE_ASSETS, check_config, check_config_files, predictability_tasks
from rcfd.methods import METHOD_REGEX, TRAINED_REGEX, alpha_name, beta_name, parse_method, with_algorithm
from rcfd.report.plots import FIGURES as PAPER_FIGURES
from rcfd.provenance import params_hash
from rcfd.report.tables import TABLES as PAPER_TABLES, labels_of


check_config_files(workflow.configfiles or [workflow.source_path("../../config.yaml")])
check_config(config, workflow.source_path("../schemas/config.schema.yaml"))

# `--config use_judge=False`: the tasks' evaluations drop their judge section (and with it the judge's
# columns, its validation and the 1.5B model build: on an AVX2 core ~6 min per evaluation)
if not config["use_judge"]:
    for task in config["tasks"]:
        config[task]["evaluate"].pop("judge", None)

# `predictability` (`snakemake predictability`) runs its use case at each prompt length, the other lengths each a
# task of its own (<task>_p<n>), added to the config so that every rule reads them as it reads a use case
PREDICTABILITY = predictability_tasks(config)
config.update(PREDICTABILITY)

R = config["results_dir"]  # per-run results (tables, metrics, trained adapters)
F = config["figures_dir"]
ALGORITHM = config.get("algorithm", "rloo")


def per_algorithm(folder):
    """`--config algorithm=ppo` writes its tables, figures, logs and benchmarks beside, not over, the
    RLOO ones (its table jobs have the same names)."""
    return folder if ALGORITHM == "rloo" else f"{folder}/{ALGORITHM}"


TABLES = per_algorithm(f"{R}/tables")
FIGURES = per_algorithm(F)
RES = config["resources_dir"]  # downloads and model folders shared by every scale
LOGS = per_algorithm(f"{R}/logs")
BENCH = per_algorithm(f"{R}/benchmarks")


# where each PyPI-shipped data asset lands (the format is what the step reading it expects)
ASSET_FILES = {"movie_snippets": "movie_snippets.tsv", "imdb_reviews": "imdb_reviews.csv",
               "wiki_dump": "wiki_dump.xml.bz2", "aclsum": "aclsum.zip"}



wildcard_constraints:
    task="[a-z0-9_]+",
    asset_file="|".join(ASSET_FILES.values()),
    method=METHOD_REGEX,
    seed="[0-9]+",
    step="[0-9]+",
    name="[A-Za-z0-9._-]+",


def methods(task, algorithm=ALGORITHM):
    """Every evaluated method of a task: configured ones plus one R_beta per beta of the sweep (and
    one R_alpha per alpha of the length-reward sweep); the RL ones named for `algorithm`."""
    t = config[task]
    names = list(t["methods"]) + [beta_name(b) for b in t["betas"]] + [alpha_name(a) for a in t.get("alphas", [])]
    return [with_algorithm(m, algorithm) for m in names]


def asset_path(name):
    return f"{RES}/data/{ASSET_FILES[name]}"


def source_input(task):
    """Input: the offline asset that `task`'s data source reads (none for a hub data set)."""
    source = config[task]["data"].get("source")
    return [asset_path(SOURCE_ASSETS[source])] if source in SOURCE_ASSETS else []


def asset_params(w):
    """Param: the config section of the asset that lands in file `w.asset_file`."""
    (name,) = [n for n, f in ASSET_FILES.items() if f == w.asset_file]
    if name not in config.get("assets", {}):
        raise ValueError(f"config key 'assets.{name}' is missing (needed for {w.asset_file})")
    return as_json(config["assets"][name])


# Every model that rules read (policy, reward model, judge, encoder) is located as (path, is_local), and a
# local folder is also an input of the rule (a DAG dependency); a hub id is only passed to the step.
def configured_model(key):
    """(path, is_local) of the `models` entry `key`: its folder, its hub id, or "none" if not configured."""
    spec = config["models"].get(key)
    if spec is None:
        return "none", False
    if spec["source"] == "hub":
        return spec["id"], False
    return f"{RES}/models/{spec['name']}", True


def local_input(located):
    """Input: the located model's folder, if it is a local one."""
    path, local = located
    return [path] if local else []


def model_param(locate, input_name):
    """Param: the rule's input `input_name` (the local folder) or else the path `locate(w)` gives."""
    return lambda w, input: input.get(input_name) or locate(w)[0]


def model_input(key):
    return local_input(configured_model(key))


def model_arg(key, input_name):
    return model_param(lambda w: configured_model(key), input_name)


def policy_key(task):
    """The `models` key of a task's initial policy (paper: Alpaca-7B for summaries, else LLaMA-2-7B)."""
    return config.get(task, {}).get("policy", "policy")


def policy_input(task=None):
    """Input: the initial policy of `task` (or of the rule's {task} wildcard), if a local folder."""
    return lambda w: model_input(policy_key(task or w.task))


def policy_arg(task=None):
    return model_param(lambda w: configured_model(policy_key(task or w.task)), "policy")


def model_spec(name):
    for spec in config["models"].values():
        if spec.get("name") == name:
            return spec
    raise ValueError(f"no model named {name!r} under config key 'models'")


def reward_model(task):
    """(path, is_local) of a task's reward model: a classifier trained here or taken from the hub;
    or, for a log-likelihood reward, the frozen initial policy itself."""
    rm = config[task]["reward_model"]
    if rm["source"] == "loglik":
        return configured_model(policy_key(task))
    return (rm["hub_id"], False) if rm["source"] == "hub" else (f"{R}/reward_models/{task}/model", True)


def reward_model_input(task):
    return local_input(reward_model(task))


reward_model_arg = model_param(lambda w: reward_model(w.task), "rm")


def prepare_outputs(task, has_rm_data):
    """Outputs of a prepare rule: the prompts with their demonstrations (+ the reward model's data),
    and the step's report (near-copies dropped, split sizes)."""
    return {"prompts": f"{R}/data/{task}/prompts.jsonl",
            **({"rm_data": f"{R}/data/{task}/rm_data.jsonl"} if has_rm_data else {}),
            "metrics": f"{R}/data/{task}/metrics.json"}


def path_options(named):
    """Param: '--key path' for each (key, path), every path quoted for the shell."""
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in named)


def prefix_of(w, output):
    """Param: a multi-format output's path without extension (table6.csv -> table6)."""
    return os.path.splitext(output[0])[0]


def table_option(w, output):
    """Param: `--table <prefix>` for a rule whose outputs hold a table beside its figure (training_x.csv ->
    --table .../training_x), empty for one without."""
    tables = [os.path.splitext(p)[0] for p in output if p.endswith(".csv")]
    return f"--table {shlex.quote(tables[0])}" if tables else ""


def figure_outputs(name):
    """A paper figure's files, and its table's where rcfd.report.plots.FIGURES gives it one."""
    return figure_files(name) + (table_files(name) if PAPER_FIGURES[name].table else [])


def run_dir(task, method, seed):
    return f"{R}/runs/{task}/{method}/seed{seed}"


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def with_runtime(section, seed):
    """A config section with the run's seed and device added (what every step's dataclass takes)."""
    return {**section, "seed": int(seed), "device": config["device"]}


def score_params(task):
    rm = config[task]["reward_model"]
    kind = {"loglik": "loglik"}.get(rm["source"], None)  # classifiers (the default) say nothing
    return {"reward_model": {**rm.get("score", {}), "device": config["device"], **({"kind": kind} if kind else {})}}


def train_params(task, method, seed):
    t = config[task]
    if method == "sft":
        return as_json({"sft": with_runtime(t["sft"], seed)})
    if parse_method(method).kind == "dpo":  # its start, the SFT policy, is also an input of the rule
        return as_json({"dpo": with_runtime(t["dpo"], seed), "sft_policy": f"{run_dir(task, 'sft', seed)}/policy"})
    rl = {**t["rl"], "sampling": t.get("sampling", {})}
    if method in gold_methods(task):  # keep the adapters the gold-vs-proxy curve scores
        rl["snapshot_steps"] = GOLD["snapshot_steps"]
    unit = t.get("alpha_unit", "per_token")  # R_alpha's unit, passed where it changes alpha
    alpha = {"alpha_unit": unit} if parse_method(method).alpha and unit != "per_token" else {}
    return as_json({"rl": with_runtime(rl, seed), **score_params(task), **alpha})  # the algorithm: in the method's name


GOLD = config.get("gold_vs_proxy")  # the gold-vs-proxy analysis (rule gold_vs_proxy), if configured


def gold_methods(task):
    """The RL methods of `task` whose training the gold-vs-proxy curve follows."""
    return [with_algorithm(m, ALGORITHM) for m in GOLD["methods"]] if GOLD and GOLD["task"] == task else []


def gold_runs():
    """Whether the gold-vs-proxy analysis is configured for a task this run has."""
    return bool(GOLD) and GOLD["task"] in config["tasks"]


def snapshot_outputs(filename):
    """`filename` of every snapshot of the gold-vs-proxy methods (every seed)."""
    return [f"{run_dir(GOLD['task'], m, s)}/snapshots/step{k}/{filename}" for m in gold_methods(GOLD["task"])
            for s in config["seeds"] for k in GOLD["snapshot_steps"]]


def gold_params():
    task = GOLD["task"]
    return as_json({**GOLD, "curves": gold_methods(task), "final_step": config[task]["rl"]["steps"],
                    "config_hash": params_hash({k: config.get(k) for k in (task, "models", "assets", "seeds", "device",
                                                                           "gold_vs_proxy")})})


def generate_params(task, method, seed):
    """The task's generation and sampling settings, with a decoding baseline's own (greedy, temp<t>, nucleus<p>)."""
    generate = {**config[task]["generate"], "sampling": config[task].get("sampling", {})}
    return as_json(with_runtime({**generate, **parse_method(method).generation_overrides}, seed))


def evaluate_params(task):
    return as_json({"task": task, **config[task]["evaluate"], **score_params(task)})


def evaluate_model_key(task, section):
    """The `models` key of the LLM judge (section "judge") or of MAUVE's encoder ("mauve"); None if
    the task's evaluation has no such section."""
    return config[task]["evaluate"].get(section, {}).get("model")


def evaluate_model_input(section):
    """Input: the judge's or MAUVE encoder's local folder (none for a hub id or when not configured)."""
    return lambda w: model_input(evaluate_model_key(w.task, section))


def evaluate_model_arg(section):
    return model_param(lambda w: configured_model(evaluate_model_key(w.task, section)), section)


def run_outputs(task, filename):
    """`filename` of every (method, seed) run of a task, plus the demonstrations' own."""
    runs = [run_dir(task, m, s) for m in methods(task) for s in config["seeds"]]
    return [f"{d}/{filename}" for d in runs + [run_dir(task, "demonstrations", 0)]]


USE_CASE_DATA = {"movies": True, "wiki": False, "summaries": True}  # use case -> has reward-model data


def data_tasks():
    """(task, its use case, whether it has reward-model data) of every prepare rule: the use cases,
    then the other prompt lengths of `predictability`."""
    variants = [(t, config["predictability"]["task"]) for t in PREDICTABILITY if t not in USE_CASE_DATA]
    return [(t, u, USE_CASE_DATA[u]) for t, u in [(t, t) for t in USE_CASE_DATA] + variants]


def predictability_runs(filename, rl_only=False):
    """`filename` of every run of `predictability`: each prompt length's methods and seeds, and its
    demonstrations' own (metrics.csv gives the task, scored.jsonl the samples); `rl_only`: its RL runs'."""
    spec = config["predictability"]
    runs = [(m, spec["seeds"]) for m in spec["methods"] if not rl_only or parse_method(m).kind == "rl"]
    runs += [] if rl_only else [("demonstrations", [0])]
    return [f"{run_dir(task, m, s)}/{filename}" for task in PREDICTABILITY for m, seeds in runs for s in seeds]


def predictability_params():
    """What the predictability step needs: each task's prompt length and alignment estimator."""
    return as_json({"name": "predictability", "config_hash": {t: task_config_hash(t) for t in PREDICTABILITY},
                    "prompt_tokens": {t: c["data"]["prompt_tokens"] for t, c in PREDICTABILITY.items()},
                    "alignment": {t: c["evaluate"]["alignment"] for t, c in PREDICTABILITY.items()}})


def table_files(name, folder=None):
    return expand(f"{folder or TABLES}/{name}.{{ext}}", ext=["csv", "md", "tex"])


def figure_files(name):
    return expand(f"{FIGURES}/{name}.{{ext}}", ext=["pdf", "png"])


def rl_runs(task, filename):
    """`filename` of every RL run of a task (first seed), with the configured algorithm."""
    return [f"{run_dir(task, m, config['seeds'][0])}/{filename}" for m in methods(task) if parse_method(m).kind == "rl"]


def algorithm_runs(task, filename):
    """`filename` of every RL run of a task (first seed), trained with RLOO and with PPO."""
    rl = [m for a in ("rloo", "ppo") for m in methods(task, a) if parse_method(m).kind == "rl"]
    return [f"{run_dir(task, m, config['seeds'][0])}/{filename}" for m in rl]


# the tables and figures each task produces (from the registries in rcfd.report.tables and rcfd.report.plots)
TASK_OUTPUTS = {task: ([n for n, t in PAPER_TABLES.items() if t.task == task],
                       [n for n, f in PAPER_FIGURES.items() if f.task == task]) for task in ("movies", "wiki", "summaries")}

# the HTML report's categories (`snakemake --report report.html`): one per use case, then the
# tables over every task
USE_CASES = {"wiki": "Use case 1 (log-likelihood, Wikipedia)", "movies": "Use case 2a (movie reviews)",
             "summaries": "Use cases 2b and 3 (summarisation)"}
OVER_TASKS = {"comparison": "Comparison with the paper", "appendix_alignment": "Appendix",
              "time_breakdown": "Appendix", "claims": "Comparison with the paper", "predictability": "Beyond the paper"}


def reproduced_tables():
    """The paper tables whose task runs."""
    return [t for task in config["tasks"] for t in TASK_OUTPUTS[task][0]]


def run_targets():
    """Every table and figure of the configured tasks (what the time breakdown waits for)."""
    targets = []
    for task in config["tasks"]:
        tables, figures = TASK_OUTPUTS[task]
        targets += [f for t in tables for f in table_files(t)] + [f for g in figures for f in figure_outputs(g)]
        targets += table_files(f"calibration_{task}") + figure_files(f"training_{task}") + table_files(f"training_{task}")
    if gold_runs():
        targets += table_files("gold_vs_proxy") + figure_files("gold_vs_proxy")
    claims = claims_files() if claimed_tasks() else []
    return targets + table_files("comparison") + table_files("appendix_alignment") + claims


def claimed_tasks():
    """The configured use cases some claim of `claims` has criteria for (config order)."""
    claimed = {task for claim in config.get("claims", {}).values() for task in claim if task != "claim"}
    return [task for task in config["tasks"] if task in claimed]


def claims_files():
    return [f"{TABLES}/claims.csv", f"{TABLES}/claims.md"]


def claims_params():
    """What the claims step needs: the declarations, the use cases in column order, and each use
    case's column name and table (linked from the README's table)."""
    names = {"wiki": "Wikipedia", "movies": "movie reviews", "summaries": "summarisation"}
    return {"name": "claims", "claims": config["claims"], "tasks": claimed_tasks(),
            "names": {t: names[t] for t in claimed_tasks()},
            "links": {t: f"{TABLES}/{TASK_OUTPUTS[t][0][0]}.md" for t in claimed_tasks()},
            "config_hash": {t: task_config_hash(t) for t in claimed_tasks()}}


def all_targets():
    """The default target: every table and figure, then the run's time breakdown."""
    return run_targets() + table_files("time_breakdown")


def workflow_rules():
    return sorted(r.name for r in workflow.rules)


def in_report(files, name, task=None):
    """A rule's outputs (paths unchanged), the one shown in the HTML report flagged with its caption
    workflow/report/<name>.rst and its category: a table's CSV, a figure's PNG."""
    shown = next(f for f in files if f.endswith((".csv", ".png")))
    category = USE_CASES[task] if task else OVER_TASKS[name]
    subcategory = "Figures" if shown.endswith(".png") else "Tables"
    flagged = report(shown, caption=f"../report/{name}.rst", category=category, subcategory=subcategory)
    return [flagged if f == shown else f for f in files]


def tasks_run_outputs(filename):
    """`filename` of every run of every task run (run_outputs of each task, in config order)."""
    return [f for task in config["tasks"] for f in run_outputs(task, filename)]


def train_data_input(w):
    """SFT needs only the demonstrations; RL needs their rewards (so it waits for the reward model)."""
    name = "prompts" if parse_method(w.method).kind in ("sft", "dpo") else "demos_scored"
    return f"{R}/data/{w.task}/{name}.jsonl"


def sft_input(w):
    """DPO starts from the SFT policy of the same task and seed."""
    return [f"{run_dir(w.task, 'sft', w.seed)}/policy"] if parse_method(w.method).kind == "dpo" else []


def adapter_input(w):
    return [f"{run_dir(w.task, w.method, w.seed)}/policy"] if parse_method(w.method).trained else []


def generations_input(w):
    if w.method == "demonstrations":
        return []
    return [f"{run_dir(w.task, w.method, w.seed)}/generations.jsonl"]


def judge_validation(task):
    """The judge validation table of a task, [] when its evaluation has no judge."""
    return [f"{R}/judge/{task}.csv"] if config[task]["evaluate"].get("judge") else []


def evaluate_judge_validation(task):
    """Input of an evaluation: the judge validation table when the judge asks informative questions only."""
    judge = config[task]["evaluate"].get("judge") or {}
    return judge_validation(task) if judge.get("informative_only") else []


def evaluate_judge_validation_option(w, input):
    """Param: '--judge-validation <table>' when the evaluation reads it (evaluate_judge_validation)."""
    return path_options([("judge_validation", input.judge_validation[0])]) if input.judge_validation else ""


def judge_validation_params(task):
    evaluate = config[task]["evaluate"]  # the judge runs at the evaluation's precision (cpu_bf16)
    return as_json({"task": task, "judge": evaluate["judge"], "device": config["device"],
                    **{k: evaluate[k] for k in ["cpu_bf16"] if k in evaluate}})


def judge_validation_option(w, input):
    """Param: '--scored ... --judge-validation ...' for the table steps when some task has a judge."""
    if not input.judge_validation:
        return ""
    return (f"--scored {' '.join(shlex.quote(p) for p in input.scored)} "
            f"--judge-validation {' '.join(shlex.quote(p) for p in input.judge_validation)}")


def tasks_judge_validation():
    return [f for task in config["tasks"] for f in judge_validation(task)]


def task_config_hash(task):
    """Provenance of a task's tables and figures: a hash of the config parts they depend on (so that
    changing another task's settings does not rebuild them)."""
    return params_hash({k: config.get(k) for k in (task, "models", "assets", "seeds", "device")})


def table_params(name, task):
    """Param: the table's name, provenance hash and the labels its judge and MAUVE headers show."""
    labels = labels_of(config[task]["evaluate"])
    return as_json({"name": name, "config_hash": task_config_hash(task), **({"labels": labels} if labels else {})})


def figure_params(name, task):
    """Param: the figure's name and the one setting from the config it draws (the training length)."""
    return as_json({"name": name, "config_hash": task_config_hash(task),
                    "train_tokens": config[task]["rl"].get("max_new_tokens")})


def job_resources(rule):
    """Resources of one job of `rule` (config `job_resources`: the rule's entry over `default`), as
    `resources: **job_resources("rule")`. mem_mb and runtime (minutes) grow with the attempt, so a
    job a cluster killed for memory or time is retried (--retries) with more."""
    spec = {**config["job_resources"]["default"], **config["job_resources"].get(rule, {})}
    return {
        "mem_mb": lambda w, attempt: spec["mem_mb"] * attempt,
        "runtime": lambda w, attempt: spec["runtime"] * attempt,
        "gpu": spec["gpu"],
    }
