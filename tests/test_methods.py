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


def test_summarisation_methods():
    a = parse_method("alpha0.005")
    assert (a.kind, a.objective, a.alpha, a.beta, a.label) == ("rl", "reward", 0.005, 0.0, "R α=0.005")
    assert parse_method("rcfd2").objective == "rcfd2" and parse_method("rcfd2").label == "RCfD (two rewards)"
    assert parse_method("dpo").trained and parse_method("dpo_early").label == "DPO+SFT early-stopped"
    assert parse_method("rcfd_energy").objective == "rcfd_energy" and parse_method("rcfd_energy_ppo").algorithm == "ppo"
    assert sorted(["rcfd_energy", "rcfd", "beta0"], key=sort_key) == ["beta0", "rcfd", "rcfd_energy"]
    names = ["rcfd2", "alpha0.01", "dpo_early", "rcfd", "beta0.12", "dpo", "sft", "base", "demonstrations",
             "alpha0.005", "beta0"]
    assert sorted(names, key=sort_key) == ["demonstrations", "base", "sft", "dpo", "beta0", "beta0.12", "rcfd",
                                           "dpo_early", "alpha0.005", "alpha0.01", "rcfd2"]


def test_ppo_variants_of_the_rl_methods():
    from rcfd.methods import with_algorithm

    m = parse_method("beta0.1_ppo")
    assert (m.kind, m.objective, m.beta, m.algorithm, m.label) == ("rl", "reward", 0.1, "ppo", "R β=0.1 (PPO)")
    two = parse_method("rcfd2_ppo")
    assert two.label == "RCfD (two rewards) (PPO)" and two.length_block
    assert parse_method("rcfd").algorithm == "rloo"
    assert [with_algorithm(n, "ppo") for n in ("base", "sft", "dpo", "rcfd", "alpha0.01")] == \
        ["base", "sft", "dpo", "rcfd_ppo", "alpha0.01_ppo"]
    assert with_algorithm("rcfd", "rloo") == "rcfd"
    for bad in ("sft_ppo", "base_ppo", "rcfd_ppo_ppo"):
        with pytest.raises(ValueError):
            parse_method(bad)
    # each PPO row right after its RLOO row
    names = ["rcfd_ppo", "beta0", "rcfd", "beta0_ppo", "sft"]
    assert sorted(names, key=sort_key) == ["sft", "beta0", "beta0_ppo", "rcfd", "rcfd_ppo"]
