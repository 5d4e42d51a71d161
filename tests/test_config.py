from pathlib import Path

import pytest
import yaml

from rcfd.config import ConfigError, check_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
CONFIGS = [REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]


def load(path=REPO / "configs/smoke.yaml"):
    return yaml.safe_load(Path(path).read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    check_config(load(path), SCHEMA)


def _error(config) -> str:
    with pytest.raises(ConfigError) as e:
        check_config(config, SCHEMA)
    msg = str(e.value)
    assert "\n" not in msg  # one line
    return msg


def test_unknown_key_is_named():
    c = load()
    c["movies"]["rl"]["stepz"] = 3
    msg = _error(c)
    assert "movies.rl" in msg and "stepz" in msg


def test_wrong_type_is_named():
    c = load()
    c["movies"]["rl"]["learning_rate"] = "fast"
    assert "movies.rl.learning_rate" in _error(c)


def test_empty_sweep_is_named():
    c = load()
    c["movies"]["betas"] = []
    assert "movies.betas" in _error(c)


def test_semantic_checks():
    c = load()
    c["movies"]["betas"] = [0.1, 0.1]
    assert "config key 'movies.betas': values [0.1, 0.1] give the same run name twice" in _error(c)
    c = load()
    del c["movies"]
    assert "task 'movies' is enabled but has no 'movies' section" in _error(c)
    c = load()
    c["models"]["reward_base"]["name"] = c["models"]["policy"]["name"]
    assert "config key 'models': model names must be unique" in _error(c)


def test_method_names_are_checked_by_the_one_grammar():
    """rcfd.methods is the one place that knows method names: a typo, a sweep member or a PPO name
    under `methods` is refused with the key and the name; every default method passes."""
    for bad in ("rcdf", "beta0.1", "rcfd_ppo", "demonstrations"):
        c = load()
        c["movies"]["methods"] = ["base", bad]
        assert f"config key 'movies.methods': {bad!r} is not a method" in _error(c)


def test_defaults_are_filled():
    c = load()
    del c["device"]
    check_config(c, SCHEMA)
    assert c["device"] == "auto"


def test_judge_and_mauve_models_must_be_model_keys():
    c = load()
    c["movies"]["evaluate"]["judge"]["model"] = "llama70b"
    assert "movies.evaluate.judge.model" in _error(c)
    c = load()
    c["wiki"]["evaluate"]["mauve"]["model"] = "gpt2-large"
    assert "wiki.evaluate.mauve.model" in _error(c)
    c = load()
    c["summaries"]["evaluate"]["judge"]["questions"] = {}
    assert "summaries.evaluate.judge.questions" in _error(c)


def test_job_resources_default_and_named_errors():
    c = load()
    del c["job_resources"]
    check_config(c, SCHEMA)
    assert c["job_resources"] == {"default": {"mem_mb": 2000, "runtime": 60, "gpu": 0}}
    c = load()
    c["job_resources"]["trian"] = {"mem_mb": 4000}  # a misspelt rule
    assert "trian" in _error(c)
    c = load()
    c["job_resources"]["train"] = {"gpu": -1}
    assert "job_resources.train.gpu" in _error(c)


# ------------------------------------------------------------------ malformed configs, one line each
NAN, INF = float("nan"), float("inf")
# (key path in config.yaml, the bad value, what the one-line error must say); "DEL" removes the key
MALFORMED = [
    # types and ranges from the schema, with the key named
    (("movies", "rl", "steps"), 0, "config key 'movies.rl.steps': 0 is less than the minimum of 1"),
    (("movies", "rl", "steps"), 3.0, "config key 'movies.rl.steps': 3.0 is not of type 'integer'"),
    (("movies", "rl", "steps"), "48", "config key 'movies.rl.steps': '48' is not of type 'integer'"),
    (("movies", "rl", "steps"), -5, "config key 'movies.rl.steps'"),
    (("movies", "rl", "steps"), 10**12, "config key 'movies.rl.steps': 1000000000000 steps is implausible"),
    (("movies", "sft", "steps"), 2.5, "config key 'movies.sft.steps': 2.5 is not of type 'integer'"),
    (("summaries", "dpo", "early_steps"), 10**9, "config key 'summaries.dpo.early_steps': 1000000000 steps"),
    (("movies", "rl", "learning_rate"), NAN, "config key 'movies.rl.learning_rate': nan is not a finite number"),
    (("movies", "rl", "learning_rate"), INF, "config key 'movies.rl.learning_rate': inf is not a finite number"),
    (("movies", "rl", "learning_rate"), 0, "config key 'movies.rl.learning_rate'"),
    (("movies", "rl", "learning_rate"), "fast", "config key 'movies.rl.learning_rate': 'fast' is not of type"),
    (("movies", "rl", "temperature"), NAN, "config key 'movies.rl.temperature': nan is not a finite number"),
    (("movies", "rl", "temperature"), 0, "config key 'movies.rl.temperature'"),
    (("movies", "rl", "top_p"), NAN, "config key 'movies.rl.top_p': nan is not a finite number"),
    (("movies", "rl", "top_p"), 1.5, "config key 'movies.rl.top_p': 1.5 is greater than the maximum of 1"),
    # the KL log-probs read at the draws (the default) need the draw to be the trained policy's (movies: beta > 0)
    (("movies", "rl", "top_p"), 0.9, "config key 'movies.rl.kl_logprobs' 'sampling' (the default) at beta > 0"),
    (("movies", "rl", "old_logprobs"), "recompute", "config key 'movies.rl.kl_logprobs' 'sampling'"),
    (("movies", "sampling"), {"attention": "flash"}, "config key 'movies.sampling.attention'"),
    (("movies", "rl", "num_generations"), 1, "config key 'movies.rl"),
    (("movies", "rl", "max_new_tokens"), 0, "config key 'movies.rl.max_new_tokens'"),
    (("wiki", "rl", "old_logprobs"), "reuse", "config key 'wiki.rl.old_logprobs': 'reuse' is not one of"),
    (("movies", "rl", "empty_completion"), "drop", "config key 'movies.rl.empty_completion': 'drop' is not one of"),
    (("movies", "rl", "stepz"), 3, "config key 'movies.rl': Additional properties are not allowed ('stepz'"),
    (("movies", "rl", "lora", "alpha"), 64, "config key 'movies.rl.lora': Additional properties are not allowed ('alpha'"),
    (("movies", "rl", "lora", "r"), 0, "config key 'movies.rl.lora.r'"),
    (("movies", "rl", "lora", "dropout"), 1.5, "config key 'movies.rl.lora.dropout'"),
    (("movies", "rl", "gamma"), 0.9, "config key 'movies.rl': Additional properties are not allowed ('gamma'"),
    (("movies", "rl", "ppo", "gamma"), 2.0, "config key 'movies.rl.ppo.gamma'"),
    (("movies", "rl", "ppo", "minibatches"), 0, "config key 'movies.rl.ppo.minibatches'"),
    (("movies", "rl", "processes"), 3, "config key 'movies.rl.processes': 3 processes cannot split the batch of 16"),
    (("movies", "sft", "processes"), 3, "config key 'movies.sft.processes': 3 processes cannot split the batch of 16"),
    (("summaries", "dpo", "processes"), 3, "config key 'summaries.dpo.processes': 3 processes cannot split"),
    (("movies", "rl", "checkpoint_steps"), -1, "config key 'movies.rl.checkpoint_steps'"),
    (("movies", "rl", "cpu_bf16"), "yes", "config key 'movies.rl.cpu_bf16': 'yes' is not of type 'boolean'"),
    (("movies", "sft", "batch_size"), 0, "config key 'movies.sft.batch_size'"),
    (("movies", "generate", "samples_per_prompt"), 0, "config key 'movies.generate.samples_per_prompt'"),
    (("movies", "generate", "top_p"), 0, "config key 'movies.generate.top_p'"),
    (("movies", "generate", "temperature"), INF, "config key 'movies.generate.temperature': inf is not a finite"),
    (("movies", "generate", "max_new_tokens"), 40.0, "config key 'movies.generate.max_new_tokens': 40.0 is not of type"),
    (("movies", "data", "rm_eval_fraction"), NAN, "config key 'movies.data.rm_eval_fraction': nan is not a finite"),
    (("movies", "data", "prompt_tokens"), 0, "config key 'movies.data.prompt_tokens'"),
    (("movies", "data", "source"), "imdb", "config key 'movies.data.source'"),
    (("movies", "data", "long_demos"), "keep", "config key 'movies.data.long_demos'"),
    (("movies", "data", "n_train_prompts"), 1.5, "config key 'movies.data.n_train_prompts'"),
    (("movies", "reward_model", "source"), "web", "config key 'movies.reward_model.source'"),
    (("movies", "reward_model", "train", "head_activation"), "gelu",
     "config key 'movies.reward_model.train.head_activation'"),
    (("movies", "reward_model", "train", "epochs"), NAN, "config key 'movies.reward_model.train.epochs': nan is not"),
    (("movies", "reward_model", "train", "loss"), "hinge", "config key 'movies.reward_model.train.loss'"),
    (("movies", "evaluate", "alignment", "bins"), 1, "config key 'movies.evaluate.alignment.bins'"),
    (("movies", "evaluate", "alignment", "smoothing"), NAN, "config key 'movies.evaluate.alignment.smoothing': nan"),
    (("movies", "evaluate", "self_bleu_samples"), 1, "config key 'movies.evaluate.self_bleu_samples'"),
    (("movies", "evaluate", "judge", "model"), "llama70b",
     "config key 'movies.evaluate.judge.model': 'llama70b' is not a key"),
    (("movies", "evaluate", "judge", "max_samples"), 0, "config key 'movies.evaluate.judge.max_samples'"),
    (("movies", "evaluate", "judge", "questions"), {}, "config key 'movies.evaluate.judge.questions'"),
    (("movies", "evaluate", "judge", "questions", "success"), "Is {text positive?",
     "config key 'movies.evaluate.judge.questions.success': not a valid template"),
    (("movies", "evaluate", "judge", "questions", "success"), "Is {txt} positive?",
     "config key 'movies.evaluate.judge.questions.success': unknown placeholder(s) ['txt']"),
    (("movies", "evaluate", "judge", "questions", "success"), "Is {} positive?",
     "config key 'movies.evaluate.judge.questions.success': unknown placeholder(s) ['']"),
    (("summaries", "data", "instruction"), "Summarize the {topic}.",
     "config key 'summaries.data.instruction': unknown placeholder(s) ['topic']"),
    (("summaries", "data", "instruction"), "Summarize the {aspect.", "config key 'summaries.data.instruction': not a valid"),
    (("movies", "evaluate", "mauve", "model"), "gpt2-large", "config key 'movies.evaluate.mauve.model'"),
    # method names: every generated name parses, and no two are the same
    (("movies", "methods"), ["base", "nucleus5"],
     "config key 'movies.methods': 'nucleus5': nucleus sampling needs 0 < p <= 1"),
    (("movies", "methods"), ["base", "nucleus0"], "config key 'movies.methods': 'nucleus0': nucleus sampling needs"),
    (("movies", "methods"), ["base", "temp0"], "config key 'movies.methods': 'temp0': a temperature must be > 0"),
    (("movies", "methods"), ["base", "rcdf"], "config key 'movies.methods': 'rcdf' is not a method"),
    (("movies", "methods"), ["base", "beta0.1"], "config key 'movies.methods': 'beta0.1' is not a method"),
    (("movies", "methods"), ["base", "rcfd_ppo"], "config key 'movies.methods': 'rcfd_ppo' is not a method"),
    (("movies", "methods"), ["base", "demonstrations"], "config key 'movies.methods': 'demonstrations' is not a method"),
    (("movies", "methods"), ["base", "RCfD"], "config key 'movies.methods': 'RCfD' is not a method"),
    (("movies", "methods"), ["base", 3], "config key 'movies.methods"),
    (("movies", "methods"), ["base", "base"], "config key 'movies.methods'"),
    (("movies", "methods"), [], "config key 'movies.methods'"),
    (("movies", "betas"), [0.1, NAN], "config key 'movies.betas.1': nan is not a finite number"),
    (("movies", "betas"), [0.1, INF], "config key 'movies.betas.1': inf is not a finite number"),
    (("movies", "betas"), [1e-7], "config key 'movies.betas': 1e-07 makes the run name 'beta1e-07'"),
    (("movies", "betas"), [0.1, 0.1000001], "config key 'movies.betas': values [0.1, 0.1000001] give the same run name"),
    (("movies", "betas"), [0.1, 0.1], "config key 'movies.betas'"),
    (("movies", "betas"), [-0.1], "config key 'movies.betas.0'"),
    (("movies", "betas"), [], "config key 'movies.betas'"),
    (("movies", "betas"), "0.1", "config key 'movies.betas'"),
    (("summaries", "alphas"), [0.01, 1e-9], "config key 'summaries.alphas': 1e-09 makes the run name 'alpha1e-09'"),
    (("summaries", "alphas"), [0.01, 0.0100000001], "config key 'summaries.alphas': values"),
    (("summaries", "methods"), ["base", "dpo"], "config key 'summaries.methods': DPO trains from the SFT policy"),
    (("claims", "C1", "movies"), [{"above": "avg_reward", "method": "beta9"}],
     "config key 'claims.C1.movies[0]': 'beta9' is not a run of movies"),
    (("claims", "C2", "movies"), [{"within": "avg_reward", "above": "alignment", "method": "beta0"}], "config key 'claims"),
    (("claims", "C3", "paris"), [{"lowest": "alignment", "method": "rcfd"}], "config key 'claims"),
    (("claims", "C5", "claim"), "DEL", "config key 'claims"),
    (("claims", "C3", "movies"), [{"lowest": "alignment", "method": "rcfd"}],
     "config key 'claims.C3.movies[0]': 'lowest' compares with the runs of 'among'; none given"),
    (("summaries", "reward_model", "score", "max_length"), 100,
     "config key 'summaries.reward_model.score.max_length': 100 cannot hold a 80-token completion"),
    (("summaries", "reward_model", "train", "max_length"), 114,
     "config key 'summaries.reward_model.train.max_length': 114 cannot hold a 80-token completion"),
    # top level
    (("tasks",), ["movies", "films"], "config key 'tasks.1'"),
    (("tasks",), [], "config key 'tasks'"),
    (("tasks",), "movies", "config key 'tasks'"),
    (("seeds",), [0, 0], "config key 'seeds'"),
    (("seeds",), [1.0], "config key 'seeds.0': 1.0 is not of type 'integer'"),
    (("seeds",), [-1], "config key 'seeds.0'"),
    (("device",), "gpu", "config key 'device'"),
    (("threads_per_job",), 0, "config key 'threads_per_job'"),
    (("algorithm",), "grpo", "config key 'algorithm'"),
    (("results_dir",), "", "config key 'results_dir': '' is not a folder to write results into"),
    (("results_dir",), "/", "config key 'results_dir': '/' is not a folder to write results into"),
    (("results_dir",), ".", "config key 'results_dir': '.' is not a folder"),
    (("figures_dir",), "  ", "config key 'figures_dir': '' is not a folder"),
    (("resources_dir",), "/", "config key 'resources_dir': '/' is not a folder"),
    (("results_dir",), 3, "config key 'results_dir': 3 is not of type 'string'"),
    (("movies.rl.steps",), 5, "config key 'movies.rl.steps': --config cannot set a nested key"),
    (("unknown_key",), 1, "config key '<top level>': Additional properties are not allowed ('unknown_key'"),
    (("movies",), "DEL", "config key 'tasks': task 'movies' is enabled but has no 'movies' section"),
    (("movies", "rl"), "DEL", "config key 'movies': 'rl' is a required property"),
    (("models", "policy"), "DEL", "config key 'models': 'policy' is a required property"),
    (("models", "policy", "source"), "hub", "config key 'models.policy'"),
    (("models", "policy", "name"), "my model", "config key 'models.policy.name'"),
    (("models", "reward_base", "name"), "smollm2-135m-instruct", "config key 'models': model names must be unique"),
    (("assets", "imdb_reviews"), "DEL", "config key 'movies.data.source': 'imdb_csv' reads the asset 'assets.imdb_reviews'"),
    (("assets", "imdb_reviews", "sha256"), "abc", "config key 'assets.imdb_reviews"),
    (("job_resources", "trian"), {"mem_mb": 4000}, "config key 'job_resources': Additional properties"),
    (("job_resources", "train", "gpu"), -1, "config key 'job_resources.train.gpu'"),
    (("job_resources", "train", "mem_mb"), NAN, "config key 'job_resources.train.mem_mb'"),
    (("wiki", "generate", "max_new_tokens"), 50, "config key 'wiki.generate.max_new_tokens': 50 must equal"),
]


def _set(config, path, value):
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    if value == "DEL":
        del node[path[-1]]
    else:
        node[path[-1]] = value


@pytest.mark.parametrize("path,value,message", MALFORMED,
                         ids=lambda x: ".".join(map(str, x)) if isinstance(x, tuple) else None)
def test_malformed_config_is_refused_in_one_line(path, value, message):
    c = load(REPO / "config.yaml")
    if path[0] == "summaries" or path == ("summaries", "alphas"):
        c["tasks"] = ["movies", "wiki", "summaries"]
    _set(c, path, value)
    assert message in _error(c)


def test_energy_rcfd_needs_three_samples_a_prompt_under_rloo():
    c = load(REPO / "configs/paper.yaml")  # 2 generations a prompt
    c["movies"]["methods"] += ["rcfd_energy"]
    assert "config key 'movies.rl.num_generations': rcfd_energy under RLOO needs at least 3" in _error(c)
    c["movies"]["rl"]["num_generations"] = 3
    check_config(c, SCHEMA)  # accepted
    c["movies"]["rl"]["num_generations"], c["algorithm"] = 2, "ppo"  # PPO's batch-mean baseline: 2 suffice
    check_config(c, SCHEMA)


def test_predictability_tasks_move_only_the_prompt_boundary():
    from rcfd.config import predictability_tasks

    c = load(REPO / "config.yaml")
    check_config(c, SCHEMA)
    tasks = predictability_tasks(c)
    assert list(tasks) == ["movies", "movies_p30", "movies_p60"] and tasks["movies"] is c["movies"]
    t, base = tasks["movies_p60"], c["movies"]
    assert t["data"]["prompt_tokens"] == 60 and t["data"]["max_demo_tokens"] == base["data"]["max_demo_tokens"]
    assert t["data"]["rm_prefix_tokens"] - base["data"]["rm_prefix_tokens"] == 50  # the RM reads what it scores
    for section in ("train", "score"):
        assert t["reward_model"][section]["max_length"] - base["reward_model"][section]["max_length"] == 50
    assert (t["methods"], t["betas"], "judge" in t["evaluate"]) == (["base", "sft", "rcfd", "rcfd_energy"], [0.3], False)
    assert base["data"]["prompt_tokens"] == 10 and "rcfd_energy" not in base["methods"]  # the default run: unchanged
    c["predictability"]["methods"] = ["sft", "rcfd"]
    assert "config key 'predictability.methods': needs 'base'" in _error(c)
    c = load(REPO / "config.yaml")
    c["movies"]["rl"]["num_generations"] = 2
    c["movies"]["methods"] = ["base", "sft", "rcfd"]
    assert ("config key 'movies.rl.num_generations' (predictability, 10-token prompts): rcfd_energy under RLOO needs "
            "at least 3") in _error(c)


HUB_IDS = ["meta-llama/Llama-2-7b-hf; rm -rf ~", "org/name/extra", "org/$(id)", " org/name", "org/na me"]


@pytest.mark.parametrize("hub_id", HUB_IDS)
def test_hub_ids_must_look_like_hub_ids(hub_id):
    c = load(REPO / "configs/paper.yaml")
    c["models"]["policy"]["id"] = hub_id
    assert f"config key 'models.policy.id': {hub_id!r} is not a hub id" in _error(c)


def test_a_local_folder_stands_in_for_a_hub_id(tmp_path):
    folder = tmp_path / "models" / "my model (local)"
    folder.mkdir(parents=True)
    c = load(REPO / "configs/paper.yaml")
    c["models"]["policy"]["id"] = str(folder)
    check_config(c, SCHEMA)  # accepted
    c["models"]["policy"]["id"] = str(tmp_path / "missing")
    assert "is not a hub id (owner/name: letters, digits, . _ -) nor an existing folder" in _error(c)


CONFIG_FILES = [  # (file contents, what the one line says after the file name)
    (b"tasks: [movies]\ntasks: [wiki]\n", ":2: key 'tasks' appears twice"),
    (b"movies:\n  rl: {steps: 3}\n  rl: {steps: 4}\n", ":3: key 'rl' appears twice"),
    (b"tasks: [movies\n", ":2:1: not valid YAML"),
    (b"movies:\n\trl: 3\n", ":2:1: not valid YAML"),
    (b"- movies\n- wiki\n", ": the top level must be a mapping of config keys, got list"),
    (b"", ": the top level must be a mapping of config keys, got NoneType"),
    (b"results_dir: r\xe9sultats\n", ": not UTF-8 text (byte 14)"),
]


@pytest.mark.parametrize("text,message", CONFIG_FILES)
def test_config_file_problems_name_the_file_and_line(text, message, tmp_path):
    from rcfd.config import check_config_files

    path = tmp_path / "overlay.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as e:
        check_config_files([REPO / "config.yaml", path])
    assert str(e.value).startswith(f"{path}{message}") and "\n" not in str(e.value), str(e.value)


def test_gold_vs_proxy_config_is_checked_before_any_job():
    """gold_vs_proxy names RL methods of its task, snapshot steps inside their training and questions
    of its judge: anything else is one line naming the key, before a job starts."""


    from rcfd.config import semantic_errors

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert not [e for e in semantic_errors(config) if "gold_vs_proxy" in e]
    steps = config["summaries"]["rl"]["steps"]
    config["gold_vs_proxy"] = {"task": "summaries", "methods": ["beta0", "sft"], "snapshot_steps": [10, steps],
                               "questions": ["factuality", "fluency"]}
    errors = [e for e in semantic_errors(config) if "gold_vs_proxy" in e]
    assert len(errors) == 3
    assert "'gold_vs_proxy.methods': 'sft' is not an RL method of summaries" in errors[0]
    assert f"'gold_vs_proxy.snapshot_steps': {steps} is not inside summaries's training" in errors[1]
    assert "'gold_vs_proxy.questions': 'fluency' is not a question" in errors[2]
