import pytest

from rcfd.methods import beta_name, parse_method, sort_key


def test_parse_method():
    assert parse_method("rcfd").objective == "rcfd" and parse_method("rcfd").beta == 0.0
    m = parse_method("beta0.3")
    assert (m.kind, m.objective, m.beta, m.label) == ("rl", "reward", 0.3, "R β=0.3")
    assert parse_method(beta_name(0.0)).label == "R β=0"
    assert not parse_method("base").trained and parse_method("sft").trained
    with pytest.raises(ValueError):
        parse_method("ppo")


def test_paper_row_order():
    names = ["rcfd", "beta0.3", "sft", "beta0", "demonstrations", "base", "beta0.1"]
    assert sorted(names, key=sort_key) == ["demonstrations", "base", "sft", "beta0", "beta0.1", "beta0.3", "rcfd"]


def test_decoding_baselines():
    assert parse_method("greedy").label == "greedy"
    assert parse_method("greedy").generation_overrides == {"temperature": 0.0}
    assert parse_method("temp0.96").label == "temperature 0.96"
    assert parse_method("nucleus0.97").generation_overrides == {"top_p": 0.97}
    assert not parse_method("nucleus0.97").trained
    names = ["rcfd", "nucleus0.97", "greedy", "base", "temp0.96", "sft", "beta0"]
    assert sorted(names, key=sort_key) == ["base", "greedy", "temp0.96", "nucleus0.97", "sft", "beta0", "rcfd"]
