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
    assert "config key 'movies.betas': duplicate values" in _error(c)
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
