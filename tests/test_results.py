"""The committed tables of the default run are exactly what the committed per-run CSVs give."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rcfd.report.tables import TABLES, apply_judge_validation, build_table, labels_of, load_metrics

REPO = Path(__file__).resolve().parents[1]


def committed_runs(task: str, filename: str, results: Path = REPO / "results") -> list[Path]:
    """The default (RLOO) runs' files; `snakemake rloo_vs_ppo`'s PPO runs (<method>_ppo) have tables of their own."""
    return sorted(p for p in (results / "runs" / task).glob(f"*/seed*/{filename}")
                  if not p.parent.parent.name.endswith("_ppo"))


def assert_table_rebuilds(name: str, results: Path = REPO / "results") -> pd.DataFrame:
    """Table `name` built from the per-run metrics under `results` equals the committed one; returns it."""
    import yaml

    committed = results / "tables" / f"{name}.csv"
    if not committed.exists():
        pytest.skip(f"{committed} is not committed yet")
    cfg = TABLES[name]
    runs = committed_runs(cfg.task, "metrics.csv", results)
    assert runs, f"no per-run metrics under {results}/runs/{cfg.task}"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    metrics, suffixes = load_metrics(runs), None
    validation = results / "judge" / f"{cfg.task}.csv"
    if validation.exists():  # the judge's columns as its validation allows
        scored = pd.concat([pd.read_json(p, lines=True) for p in committed_runs(cfg.task, "scored.jsonl", results)])
        metrics, suffixes, _ = apply_judge_validation(metrics, scored, pd.read_csv(validation))
    # the judge / MAUVE labels the table was built with (its provenance; an ablation ran under other ones)
    provenance = committed.with_name(committed.name + ".provenance.json")
    built_with = json.loads(provenance.read_text())["params"].get("labels") if provenance.exists() else None
    rebuilt = build_table(metrics, cfg, built_with or labels_of(config[cfg.task]["evaluate"]), suffixes)
    pd.testing.assert_frame_equal(rebuilt, pd.read_csv(committed), check_dtype=False)
    return rebuilt


@pytest.mark.parametrize("name", sorted(TABLES))
def test_committed_table_rebuilds_from_per_run_csvs(name):
    assert_table_rebuilds(name)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_appendix_configured_estimator_is_the_tables_alignment(name):
    """The appendix recomputes A from the committed scored samples; under the task's configured
    estimator it is the A of the committed table."""
    import yaml

    from rcfd.report.analysis import APPENDIX, alignment_sensitivity

    committed = REPO / "results/tables" / f"{name}.csv"
    if not committed.exists():
        pytest.skip(f"{committed} is not committed yet")
    cfg = TABLES[name]
    scored = pd.concat([pd.read_json(p, lines=True) for p in committed_runs(cfg.task, "scored.jsonl")])
    if scored["reward"].isna().any():  # the appendix refuses a missing reward (rcfd.report.analysis.require_finite_rewards)
        assert "evaluated before that rule" in (REPO / "results/tables" / f"{name}.md").read_text()
        pytest.skip(f"results/runs/{cfg.task} were evaluated before the empty-sample rule: empty samples have no reward")
    configured = yaml.safe_load((REPO / "config.yaml").read_text())[cfg.task]["evaluate"]["alignment"]
    appendix = alignment_sensitivity(scored.assign(task=cfg.task), {cfg.task: configured}, APPENDIX["appendix_alignment"])
    column = f"{configured['bins']}/{configured['smoothing']:g}"
    recomputed = appendix.set_index("method")[column]
    table = pd.read_csv(committed).set_index("method")
    for method in table.index.drop("demonstrations"):
        assert recomputed[method] == pytest.approx(table.at[method, "A ↓"], abs=0.006)
    # and from the definition, without the package's helpers: KL(demo || policy) of the two reward
    # histograms on shared equal-width bins, each count + smoothing (scipy normalises both)
    from scipy.stats import entropy

    from rcfd.methods import parse_method

    demos = scored.loc[scored["method"] == "demonstrations", "reward"].to_numpy(float)
    for (method, _), run in scored[scored["method"] != "demonstrations"].groupby(["method", "seed"]):
        rewards = run["reward"].to_numpy(float)
        edges = np.linspace(min(demos.min(), rewards.min()), max(demos.max(), rewards.max()), configured["bins"] + 1)
        counts = [np.histogram(x, edges)[0] + configured["smoothing"] for x in (demos, rewards)]
        assert entropy(*counts) == pytest.approx(table.at[parse_method(method).label, "A ↓"], abs=0.006), method


@pytest.mark.parametrize(("run", "name"), [("movies_seeds", "table6"), ("movies_snippets_seeds", "table6"),
                                         ("summaries_seeds", "table1")])
def test_three_seed_table_rebuilds_with_confidence_intervals(run, name):
    """The three-seed runs (IMDB reviews; Rotten Tomatoes snippets; summaries) give their committed
    Table 6 or 1: means and 95% CI half-widths over the seeds, from their per-run CSVs."""
    table = assert_table_rebuilds(name, REPO / "results/ablations" / run / "run").set_index("method")
    assert (table.drop("demonstrations")["seeds"] == 3).all()
    assert table.drop("demonstrations")["A ↓_ci95"].gt(0).all()


def test_committed_summaries_data_keep_evaluation_texts_out_of_training():
    """The committed summaries data are those of the current preparation (a fresh clone's run reuses
    them, as Snakemake sees them up to date): no evaluation demonstration is a reward-model text or a
    training prompt's demonstration or rejected (DPO) text, and the RM never sees a policy text."""
    import json

    data = REPO / "results/data/summaries"
    prompts = [json.loads(line) for line in (data / "prompts.jsonl").read_text().splitlines()]
    pairs = [json.loads(line) for line in (data / "rm_data.jsonl").read_text().splitlines()]
    eval_texts = {p["demo"].strip() for p in prompts if p["split"] == "eval"}
    rm_texts = {r[k].strip() for r in pairs for k in ("chosen", "rejected")}
    train_texts = {p[k].strip() for p in prompts if p["split"] == "train" for k in ("demo", "rejected")}
    assert eval_texts and not eval_texts & rm_texts and not eval_texts & train_texts
    assert not {p[k].strip() for p in prompts for k in ("demo", "rejected")} & rm_texts


@pytest.mark.parametrize("name", sorted(TABLES))
def test_committed_tables_count_every_generated_sample(name):
    """Every committed table's samples column is the number of samples each run generated (its
    scored file's rows, one per prompt for greedy decoding), and no scored sample lacks a reward."""
    import math

    committed = REPO / "results/tables" / f"{name}.csv"
    if not committed.exists():
        pytest.skip(f"{committed} is not committed yet")
    cfg = TABLES[name]
    table = pd.read_csv(committed).set_index("method")
    prompts = sum(1 for line in (REPO / f"results/data/{cfg.task}/prompts.jsonl").read_text().splitlines()
                  if '"split": "eval"' in line)
    from rcfd.methods import parse_method

    checked = 0
    for path in committed_runs(cfg.task, "scored.jsonl"):
        rows = pd.read_json(path, lines=True)
        method = parse_method(path.parent.parent.name)
        assert table.at[method.label, "samples"] == len(rows)
        if "empty_share" not in pd.read_csv(path.parent / "metrics.csv"):
            continue  # evaluated before the empty-sample rule: its caption says so (rcfd.report.tables.caption_of)
        assert rows["reward"].map(lambda r: isinstance(r, float) and math.isfinite(r)).all(), path
        if method.name == "greedy":
            assert len(rows) == prompts == rows["id"].nunique()
        checked += 1
    if not checked:
        assert "evaluated before that rule" in (REPO / "results/tables" / f"{name}.md").read_text()


def test_committed_claims_rebuild_and_the_readme_shows_them():
    """results/tables/claims.csv is what config.yaml's declared criteria give on the committed
    per-run metrics, and the README's claims block is results/tables/claims.md, unchanged."""
    import yaml

    from rcfd.report.claims import claims_table

    committed = REPO / "results/tables/claims.csv"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    tasks = [t for t in config["tasks"] if any(t in c for c in config["claims"].values())]
    metrics = load_metrics([p for t in tasks for p in committed_runs(t, "metrics.csv")])
    rebuilt = claims_table(metrics, config["claims"], tasks)
    pd.testing.assert_frame_equal(rebuilt, pd.read_csv(committed), check_dtype=False)
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- claims:", 1)[1].split("-->\n", 1)[1].split("<!-- /claims -->", 1)[0]
    assert block == (REPO / "results/tables/claims.md").read_text(), "README's claims block differs: copy claims.md"


def test_committed_rloo_vs_ppo_rebuilds_from_its_runs():
    """`snakemake rloo_vs_ppo --config use_judge=False results_dir=results/rloo_vs_ppo`: the committed
    table is what its runs' metrics and training logs give, on the IMDB reviews, every RL method twice."""
    from rcfd.report.analysis import algorithm_comparison

    results = REPO / "results/rloo_vs_ppo"
    committed = results / "tables/rloo_vs_ppo.csv"
    if not committed.exists():
        pytest.skip(f"{committed} is not committed yet")
    runs = sorted((results / "runs/movies").glob("*/seed0/metrics.csv"))
    seconds = {p.parent.parent.name: pd.read_csv(p.parent / "policy/train_log.csv")["step_time"].dropna().tolist()
               for p in runs}
    rebuilt = algorithm_comparison(load_metrics(runs), seconds)
    pd.testing.assert_frame_equal(rebuilt, pd.read_csv(committed), check_dtype=False, atol=1e-3)
    assert sorted(rebuilt["algorithm"]) == ["PPO"] * 4 + ["RLOO"] * 4
    data = json.loads((results / "data/movies/metrics.json").read_text())
    assert data["source_texts"] == 25000 and data["near_copies_dropped"] > 0  # IMDB, near-copies dropped
