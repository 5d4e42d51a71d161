import math

import numpy as np
import pandas as pd
import pytest

from rcfd.report.tables import TABLES, build_table, load_metrics, write_table
from rcfd.utils import InputError


def _metrics():
    rows = []
    for method, r in [("rcfd", 1.0), ("beta0", 3.0), ("base", 0.5), ("demonstrations", 1.1)]:
        for seed in (0, 1):
            rows.append({"task": "movies", "method": method, "seed": seed, "alignment": r / 10 + seed,
                         "avg_reward": r + seed, "mean_tokens": 10, "success_vader": 0.9, "loglik_base": -3.0,
                         "distinct_2": 0.5, "self_bleu": 5.0, "n": 40, "empty_share": 0.05 * seed})
    return pd.DataFrame(rows)


def test_table_means_over_seeds_in_paper_order(tmp_path):
    table = build_table(_metrics(), TABLES["table6"])
    assert list(table["method"]) == ["demonstrations", "base", "R β=0", "RCfD"]
    assert table.loc[table.method == "R β=0", "avg R"].item() == pytest.approx(3.5)
    assert set(table["seeds"]) == {2}
    paths = write_table(table, tmp_path / "t", "caption")
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex"]
    assert "RCfD" in paths[1].read_text() and "\\begin{tabular}" in paths[2].read_text()
    assert pd.read_csv(paths[0]).equals(table)


def test_missing_metric_is_named():
    with pytest.raises(InputError, match="self_bleu"):
        build_table(_metrics().drop(columns="self_bleu"), TABLES["table6"])


def test_load_metrics_checks_columns(tmp_path):
    f = tmp_path / "m.csv"
    pd.DataFrame([{"method": "rcfd", "seed": 0}]).to_csv(f, index=False)
    with pytest.raises(InputError, match="m.csv: metrics file lacks column 'task'"):
        load_metrics([f])


def test_paper_values_are_labelled_data(tmp_path):
    from rcfd.paper import paper_table

    paper = paper_table("table6")
    assert paper.loc[paper.method == "rcfd", "alignment"].item() == 0.04
    paths = write_table(build_table(_metrics(), TABLES["table6"]), tmp_path / "table6", "caption")
    md = paths[1].read_text()
    assert "the paper's values" in md and md.index("caption") < md.index("the paper's values")
    assert "paper" not in paths[0].read_text()  # the CSV holds this run's numbers only


def _three_seeds():
    """Per-run metrics of three seeds (the demonstrations evaluated once, as the workflow does)."""
    rows = [{"task": "movies", "method": "demonstrations", "seed": 0, "alignment": 0.0, "avg_reward": 2.0,
             "mean_tokens": 10, "success_vader": 0.9, "loglik_base": -3.0, "distinct_2": 0.5, "self_bleu": 5.0,
             "n": 20, "empty_share": 0.0}]
    for method, rewards in [("rcfd", [1.0, 2.0, 4.0]), ("beta0", [3.0, 3.0, 3.0])]:
        for seed, r in enumerate(rewards):
            rows.append({**rows[0], "method": method, "seed": seed, "avg_reward": r, "alignment": r / 10})
    return pd.DataFrame(rows)


def test_three_seeds_give_mean_and_student_t_ci(tmp_path):
    table = build_table(_three_seeds(), TABLES["table6"])
    rcfd = table[table.method == "RCfD"].iloc[0]
    # by hand: mean 7/3, sample sd sqrt(7/3), t_{0.975, 2} = 4.302653 (two-sided 95%, 2 dof)
    assert rcfd["avg R"] == pytest.approx(2.33)
    assert rcfd["avg R_ci95"] == pytest.approx(round(4.302653 * (7 / 3) ** 0.5 / 3 ** 0.5, 2))
    assert rcfd["avg R_ci95"] == pytest.approx(3.79)
    assert table.loc[table.method == "R β=0", "avg R_ci95"].item() == 0  # no spread
    assert pd.isna(table.loc[table.method == "demonstrations", "avg R_ci95"].item())  # one seed
    assert list(table.columns[1:5]) == ["A ↓", "A ↓_ci95", "avg R", "avg R_ci95"]
    assert list(table["seeds"]) == [1, 3, 3]
    paths = write_table(table, tmp_path / "t", "caption")
    assert pd.read_csv(paths[0]).equals(table)  # the CSV keeps the numbers
    md, tex = paths[1].read_text(), paths[2].read_text()
    assert "2.33 ± 3.79" in md and "2.33 ± 3.79" in tex and "Student t" in md and "Student t" in tex
    assert "_ci95" not in md
    demo_row = next(line for line in md.splitlines() if line.startswith("| demonstrations"))
    assert "±" not in demo_row


def test_ci95_helper():
    from rcfd.report.tables import ci95

    assert ci95([1.0, 2.0, 4.0]) == pytest.approx(4.302653 * (7 / 3) ** 0.5 / 3 ** 0.5, rel=1e-6)
    assert ci95([1.0, 3.0]) == pytest.approx(12.706205 * 2 ** 0.5 / 2 ** 0.5, rel=1e-6)
    assert pd.isna(ci95([1.0])) and pd.isna(ci95([]))


def test_one_seed_tables_have_no_interval(tmp_path):
    table = build_table(_three_seeds().query("seed == 0"), TABLES["table6"])
    assert not [c for c in table.columns if c.endswith("_ci95")]
    md = write_table(table, tmp_path / "t", "caption")[1].read_text()
    assert "±" not in md and "Student t" not in md


def test_comparison_puts_the_paper_beside_this_run():
    from rcfd.report.tables import comparison

    comp = comparison(_three_seeds(), ["table6"])
    assert list(comp.columns) == ["table", "method", "metric", "paper", "this run", "this run_ci95", "measured as"]
    row = comp[(comp.method == "RCfD") & (comp.metric == "avg_reward")].iloc[0]
    assert (row["table"], row["paper"], row["this run"], row["this run_ci95"], row["measured as"]) == \
        ("Table 6", 1.97, 2.33, 3.79, "avg R")
    assert comp[comp.metric == "success"]["measured as"].unique().tolist() == ["success (VADER)"]
    # paper rows this run lacks are kept, with no number of this run
    sft = comp[(comp.method == "SFT") & (comp.metric == "alignment")].iloc[0]
    assert sft["paper"] == 0.10 and pd.isna(sft["this run"])
    assert list(comp.drop_duplicates("method")["method"]) == ["demonstrations", "base", "SFT", "R β=0", "R β=0.1",
                                                              "R β=0.3", "RCfD"]


def test_comparison_length_block_uses_the_two_reward_alignment():
    from rcfd.report.tables import comparison

    base = {"task": "summaries", "seed": 0, "avg_reward": 1.0, "mean_tokens": 20, "alignment": 0.1,
            "alignment_two": 0.7, "distinct_2": 0.5, "self_bleu": 5.0, "n": 20, "empty_share": 0.0}
    metrics = pd.DataFrame([{**base, "method": m} for m in ("demonstrations", "rcfd", "rcfd2", "alpha0.05")])
    comp = comparison(metrics, ["table1"]).set_index(["method", "metric"])
    assert comp.loc[("RCfD", "alignment"), "this run"] == 0.1
    assert comp.loc[("RCfD (two rewards)", "alignment"), "this run"] == 0.7
    assert comp.loc[("RCfD (two rewards)", "alignment"), "measured as"] == "A (R_RM, length) ↓"
    assert comp.loc[("R α=0.05", "alignment"), "this run"] == 0.7 and pd.isna(comp.loc[("R α=0.05", "alignment"), "paper"])
    assert comp.loc[("R α=0.005", "alignment"), "paper"] == 0.46
    assert comp.loc[("RCfD", "delta_demo"), "measured as"] == "not measured"
    assert "this run_ci95" not in comp.columns  # one seed


def test_alignment_sensitivity_recomputes_a_on_a_grid():
    import numpy as np

    from rcfd.evaluate.metrics import AlignmentConfig, alignment_score
    from rcfd.report.analysis import APPENDIX, alignment_sensitivity

    rng = np.random.default_rng(0)
    demos = rng.normal(0, 1, 200)
    runs = {"base": rng.normal(1.5, 1, 200), "beta0": rng.normal(3, 0.2, 200), "rcfd": rng.normal(0, 1, 200)}
    rows = [{"task": "movies", "method": "demonstrations", "seed": 0, "reward": r} for r in demos]
    for seed in (0, 1):
        rows += [{"task": "movies", "method": m, "seed": seed, "reward": r + seed * 0.01}
                 for m, rs in runs.items() for r in rs]
    table = alignment_sensitivity(pd.DataFrame(rows), {"movies": {"bins": 20, "smoothing": 0.5}},
                                  APPENDIX["appendix_alignment"])
    assert list(table.columns) == ["task", "method", "configured"] + [f"{b}/{s}" for b in (10, 20, 40)
                                                                      for s in ("0.1", "0.5", "1")]
    assert list(table["method"]) == ["base", "R β=0", "RCfD", "Spearman ρ vs configured", "Kendall τ vs configured"]
    by_hand = np.mean([alignment_score(demos, runs["beta0"] + s * 0.01, AlignmentConfig(40, 0.1)) for s in (0, 1)])
    assert table.set_index("method").at["R β=0", "40/0.1"] == pytest.approx(by_hand, abs=1e-3)
    assert (table.set_index("method").loc["Spearman ρ vs configured"].iloc[2:] == 1).all()  # ranking kept
    assert set(table["configured"]) == {"20/0.5"}


def test_rloo_vs_ppo_table():
    from rcfd.report.analysis import algorithm_comparison

    rows = [{"task": "movies", "method": m, "seed": 0, "alignment": a, "avg_reward": r, "mean_tokens": 9.0,
             "distinct_2": 0.5, "self_bleu": 10.0}
            for m, a, r in [("rcfd_ppo", 0.3, 1.5), ("beta0", 1.2, 2.3), ("rcfd", 0.2, 1.8), ("beta0_ppo", 0.9, 2.0),
                            ("base", 0.1, 0.5), ("demonstrations", 0.0, 1.2)]]
    table = algorithm_comparison(pd.DataFrame(rows), {"rcfd": [30.0, 20.0, 40.0], "rcfd_ppo": [25.0], "beta0": [31.0]})
    assert list(table["method"]) == ["R β=0", "R β=0", "RCfD", "RCfD"]  # RL runs only, RLOO then PPO
    assert list(table["algorithm"]) == ["RLOO", "PPO", "RLOO", "PPO"]
    assert list(table["A ↓"]) == [1.2, 0.9, 0.2, 0.3]
    assert table["s/step"].tolist()[2:] == [30.0, 25.0] and pd.isna(table["s/step"][1])
    assert table["fastest step (s)"].tolist()[2:] == [20.0, 25.0]
    with pytest.raises(InputError, match="no RL runs"):
        algorithm_comparison(pd.DataFrame(rows[4:]), {})


def _benchmark(path, seconds, cpu, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")


def test_time_breakdown_by_hand(tmp_path):
    """Job-minutes per rule from benchmark files laid out as Snakemake writes them (<rule>.tsv and
    <rule>/<wildcards>.tsv), biggest first, with a total; folders of no workflow rule left out."""
    from rcfd.report.timing import read_benchmarks, time_breakdown

    b = tmp_path / "benchmarks"
    _benchmark(b / "train/movies/rcfd/seed0.tsv", 600, 1150, 3000)
    _benchmark(b / "train/movies/sft/seed0.tsv", 120, 200, 2500)
    _benchmark(b / "evaluate/movies/rcfd/seed0.tsv", 180, 170, 3500)
    _benchmark(b / "table6.tsv", 6, 5, 300)
    _benchmark(b / "old_rule/x.tsv", 999, 999, 1)  # a rule this workflow no longer has
    jobs = read_benchmarks(b)
    assert sorted(jobs["rule"]) == ["evaluate", "old_rule", "table6", "train", "train"]
    table = time_breakdown(jobs, ["train", "evaluate", "table6", "figure3"]).set_index("rule")
    assert list(table.index) == ["train", "evaluate", "table6", "total"]
    assert table.loc["train"].to_dict() == {"jobs": 2, "job-minutes": 12.0, "share (%)": round(100 * 720 / 906, 2),
                                            "longest job (min)": 10.0, "CPU-minutes": 22.5,
                                            "peak memory (GB)": round(3000 / 1024, 2)}
    assert table.loc["total", "jobs"] == 4 and table.loc["total", "job-minutes"] == 15.1
    assert table.loc["total", "peak memory (GB)"] == round(3500 / 1024, 2)
    # the evaluations' seconds in the LLM judge: a row under evaluate, not counted again in the total
    judged = time_breakdown(jobs, ["train", "evaluate", "table6"], pd.Series([60.0, 120.0, float("nan")]))
    judged = judged.set_index("rule")
    assert list(judged.index) == ["train", "evaluate", "  of which the LLM judge", "table6", "total"]
    assert judged.loc["  of which the LLM judge", ["jobs", "job-minutes", "longest job (min)"]].tolist() == [2, 3.0, 2.0]
    assert judged.loc["  of which the LLM judge", "share (%)"] == round(100 * 3 / 15.1, 2)
    assert judged.loc["total", "job-minutes"] == 15.1
    with pytest.raises(InputError, match="no benchmark file of this workflow's rules"):
        time_breakdown(jobs, ["figure2"])
    (b / "table6.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match="table6.tsv: no column"):
        read_benchmarks(b)


def test_rl_step_breakdown_by_hand():
    """Mean seconds per phase of an RL step from the training logs' time/<phase> columns, `other`
    the rest of TRL's step_time, and each phase's share pooled over every timed step; a log with no
    phase times (PPO's loop) is left out."""
    from rcfd.report.timing import rl_step_breakdown
    from rcfd.train.phases import PHASES

    def log(steps, step_time, **phases):
        rows = [{"step": i + 1, "step_time": step_time, **{f"time/{p}": phases.get(p, 0.0) for p in PHASES}}
                for i in range(steps)]
        return pd.DataFrame(rows + [{"step": steps, "train_runtime": 9.0}])  # TRL's last row: no step metrics

    logs = {"movies/rcfd": log(2, 10.0, generate=4.0, reward=1.0, logprobs_no_grad=1.0, train_forward=1.5,
                               backward=2.0, optimizer=0.5),
            "wiki/beta0": log(4, 20.0, generate=10.0, reward=2.0, logprobs_no_grad=2.0, train_forward=2.0,
                              backward=3.0, optimizer=1.0),
            "movies/rcfd_ppo": pd.DataFrame({"step": [1], "step_time": [3.0], "reward": [0.1]})}
    table = rl_step_breakdown(logs).set_index("run")
    assert list(table.index) == ["movies/rcfd", "wiki/beta0", "share of all steps (%)"]
    assert table.loc["movies/rcfd"].to_dict() == {"steps": 2, "s/step": 10.5, "generate (s)": 4.0, "reward (s)": 1.0,
                                                  "logprobs_no_grad (s)": 1.0, "train_forward (s)": 1.5,
                                                  "backward (s)": 2.0, "optimizer (s)": 0.5, "other (s)": 0.5}
    share = table.loc["share of all steps (%)"]
    # pooled: 2 steps of 10.5 s and 4 of 21 s = 105 s, of which 2 x 4 + 4 x 10 = 48 s generating
    assert share["generate (s)"] == round(100 * 48 / 105, 2) and share["steps"] == 6
    assert abs(share.drop(["steps", "s/step"]).sum() - 100) < 0.05
    with pytest.raises(InputError, match="no training log with phase times"):
        rl_step_breakdown({"movies/rcfd_ppo": logs["movies/rcfd_ppo"]})
    # with the roofline its job recorded: 1 prompt sampled twice, 3 prompt + 2 completion tokens a
    # sequence (10 tokens a step), 10 frozen weights + 1 LoRA weight (merged while sampling), a machine
    # of 1000 FLOP/s and 1000 B/s, no cache bytes. Sampling: prefill 2*10*1*3 = 60 FLOPs (0.06 s), then
    # per token max(2*10*2 FLOPs, 10 weights * 4 B) / 1000 = 0.04 s, twice: 0.14 s. Training (7 tokens,
    # 4 of them completions): forward 2*11*7 = 154 + backward 2*10*7 + 4*1*7 = 168 FLOPs: 0.322 s
    timed = log(2, 3.0, generate=0.7, train_forward=1.0, backward=0.61).assign(
        num_tokens=[10, 20, None], **{"completions/mean_length": [2.0, 2.0, None]})
    timed.attrs["roofline"] = {"threads": 1, "gemm_flops": {"float32": 1e3, "bfloat16": 1e3}, "bandwidth": 1e3,
                               "body": 10, "head": 0, "lora": 1, "kv_bytes_per_token": 0, "prompts": 1,
                               "sequences": 2, "sampling_dtype": "float32", "merged": True, "train_dtype": "float32"}
    floors = rl_step_breakdown({"summaries/rcfd": timed}).set_index("run").loc["summaries/rcfd"]
    assert floors[["generate floor (s)", "train floor (s)"]].tolist() == [0.14, 0.32]
    assert floors[["generate x floor", "train x floor"]].tolist() == [5.0, 5.0]


def test_calibration_table_one_row_per_method_from_scored_samples():
    from rcfd.report.analysis import APPENDIX, calibration_table

    demos = [{"task": "movies", "method": "demonstrations", "seed": 0, "id": i, "reward": float(i)} for i in range(4)]
    rcfd = [{"task": "movies", "method": "rcfd", "seed": s, "id": i, "reward": float(i) + 1.0}
            for s in (0, 1) for i in range(4) for _ in range(2)]
    base = [{"task": "movies", "method": "base", "seed": 0, "id": i, "reward": 1.5 + j} for i in range(4) for j in (-1, 1)]
    table = calibration_table(pd.DataFrame(demos + rcfd + base), {"movies": {"bins": 10, "smoothing": 0.5}},
                              APPENDIX["calibration"]).set_index("method")
    assert list(table.index) == ["base", "RCfD"]
    assert table.loc["RCfD", ["mse", "bias²", "within", "cov", "corr"]].tolist() == [1.0, 1.0, 0.0, 1.25, 1.0]
    assert table.loc["base", ["mse", "bias²", "within", "between", "var(demo)", "cov"]].tolist() == \
        [2.25, 0.0, 1.0, 0.0, 1.25, 0.0]
    with pytest.raises(InputError, match="match no demonstration"):
        calibration_table(pd.DataFrame(demos[:2] + base), {"movies": {"bins": 10, "smoothing": 0.5}},
                          APPENDIX["calibration"])


def test_training_plateaus_by_hand():
    """A flat noisy curve levels off, a rising one does not; quarters, delta and its standard error
    by hand; quantities a log lacks (monitors) are left out, one with fewer than 8 steps is not judged."""
    from rcfd.report.analysis import plateau, training_plateaus

    flat = pd.Series([1.0, 3.0] * 8)  # 16 steps, quarters of 4: means 2, 2, 2, 2
    p = plateau(flat)
    sd = pd.Series([1.0, 3.0] * 4).std()
    assert p["delta"] == 0 and p["sd"] == pytest.approx(sd) and p["se"] == pytest.approx(sd * 0.5 ** 0.5)
    assert p["plateau"] and p["first quarter"] == 2
    rising = pd.Series([float(s) for s in range(16)])  # last two quarters: means 9.5 and 13.5
    assert plateau(rising)["delta"] == 4 and not plateau(rising)["plateau"]
    logs = {"rcfd": pd.DataFrame({"step": range(16), "reward": flat, "monitor/length": rising,
                                  "monitor/empty": [0.0] * 7 + [None] * 9}),
            "beta0": pd.DataFrame({"step": range(16), "reward": rising})}
    table = training_plateaus(logs, {"demo_reward": 0.7, "demo_tokens": 27.5})
    assert list(zip(table["run"], table["quantity"])) == [("beta0", "objective"), ("rcfd", "objective"),
                                                          ("rcfd", "length"), ("rcfd", "empty share")]
    assert table["plateau"].tolist() == [False, True, False, None]  # 7 steps of empty share: not judged
    assert table["demonstrations"].iloc[2] == 27.5 and pd.isna(table["demonstrations"].iloc[0])
    with pytest.raises(InputError, match="training plateaus"):
        training_plateaus({"rcfd": pd.DataFrame({"step": [1], "reward": [None]})})


def test_front_table_by_hand():
    """Figure 4's table: gaps to the demonstrations, within 15% or not, on the alpha front or not (a
    point no sweep run beats), and the R_RM gap to the best sweep run no longer than the point."""
    from rcfd.report.analysis import front_table

    points = {"demonstrations": (28, 0.8), "beta0": (80, 1.2), "alpha0.01": (40, 0.9), "alpha0.02": (20, 0.3),
              "rcfd2": (30, 0.75), "sft": (45, 0.6), "base": (10, -0.2)}
    metrics = pd.DataFrame([{"task": "summaries", "method": m, "seed": 0, "mean_tokens": n, "avg_reward": r}
                            for m, (n, r) in points.items()])
    table = front_table(metrics).set_index("method")
    rcfd2 = table.loc["RCfD (two rewards)"]
    assert rcfd2["length vs demos (%)"] == pytest.approx(100 * (30 / 28 - 1), abs=1e-3)
    assert rcfd2["within 15% of demos"] and rcfd2["on the α front"]
    assert rcfd2["front gap (R_RM)"] == pytest.approx(0.75 - 0.3)  # only alpha=0.02 is as short
    sft = table.loc["SFT"]
    assert not sft["within 15% of demos"] and not sft["on the α front"]  # alpha=0.01: shorter, better
    assert sft["front gap (R_RM)"] == pytest.approx(0.6 - 0.9)
    assert pd.isna(table.loc["base", "front gap (R_RM)"]) and table.loc["base", "on the α front"]
    assert table.loc["R α=0.01", "on the α front"] and table.loc["R β=0", "on the α front"]
    # distances in the demonstrations' units (length / 28, R_RM / 0.8): RCfD (two rewards) at
    # (30/28, 0.75/0.8) is (2/28, -0.05/0.8) from the demonstrations; the front runs through
    # (20, 0.3), (40, 0.9), (80, 1.2), and its nearest point lies on the first segment
    assert rcfd2["distance to demos"] == pytest.approx(math.hypot(2 / 28, 0.05 / 0.8), abs=1e-3)
    a, b, p = np.array([20 / 28, 0.3 / 0.8]), np.array([40 / 28, 0.9 / 0.8]), np.array([30 / 28, 0.75 / 0.8])
    foot = a + np.dot(p - a, b - a) / np.dot(b - a, b - a) * (b - a)
    assert rcfd2["distance to front"] == pytest.approx(np.linalg.norm(p - foot), abs=1e-3)
    assert table.loc["R α=0.01", "distance to front"] == 0 and table.loc["R β=0", "distance to front"] == 0
    # the alpha a search would have found: alpha=0.01, (12/28, 0.1/0.8) from the demonstrations
    assert table.index[table["α run nearest demos"]].tolist() == ["R α=0.01"]
    with pytest.raises(InputError, match="demonstrations"):
        front_table(metrics[metrics["method"] != "demonstrations"])


def test_caption_says_when_runs_predate_the_empty_sample_rule():
    from rcfd.report.tables import PREDATES_EMPTY_RULE, caption_of

    metrics = _metrics()
    assert PREDATES_EMPTY_RULE not in caption_of(metrics, TABLES["table6"])
    assert caption_of(metrics.drop(columns="empty_share"), TABLES["table6"]).endswith(PREDATES_EMPTY_RULE)
    mixed = metrics.assign(empty_share=[None] + list(metrics["empty_share"][1:]))
    assert caption_of(mixed, TABLES["table6"]).endswith(PREDATES_EMPTY_RULE)


def test_wilson_interval_by_hand_and_against_scipy():
    from scipy.stats import binomtest

    from rcfd.report.tables import wilson_ci95

    # 0 of 10: the interval is [0, z^2 / (n + z^2)] = [0, 3.8415 / 13.8415]
    assert wilson_ci95(0, 10) == pytest.approx(3.841459 / 13.841459 / 2, rel=1e-5)
    for k, n in [(30, 100), (48, 96), (1, 32), (96, 96)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_ci95(k, n) == pytest.approx((ci.high - ci.low) / 2, rel=1e-6)
    # the bar the judge's sample size is set for: 96 judged samples, the worst case p = 1/2
    assert wilson_ci95(48, 96) < 0.10


def test_judge_columns_pool_the_judged_samples_of_every_seed():
    """A judge column is the fraction over all seeds' judged samples with its Wilson half-width,
    also with one seed; the other columns keep the mean and t interval over seeds."""
    from rcfd.report.tables import CI, summary, wilson_ci95

    metrics = _metrics()
    metrics["judge_success"] = [0.5, 1.0] * 4  # seed 0: 2 of 4; seed 1: 2 of 2
    metrics["judge_success_judged"] = [4, 2] * 4
    table = summary(metrics, TABLES["table6"])
    assert table.loc["rcfd", "judge_success"] == pytest.approx(round(4 / 6, 2))
    assert table.loc["rcfd", "judge_success" + CI] == pytest.approx(round(float(wilson_ci95(4, 6)), 2))
    assert table.loc["rcfd", "avg_reward"] == 1.5 and "avg_reward" + CI in table
    one_seed = summary(metrics[metrics["seed"] == 0], TABLES["table6"])
    assert "avg_reward" + CI not in one_seed  # one seed: no interval over seeds
    assert one_seed.loc["rcfd", "judge_success" + CI] == pytest.approx(round(float(wilson_ci95(2, 4)), 2))
    assert "Δ_demo" not in " ".join(one_seed.columns) and "judge_success_judged" not in one_seed


def test_claims_verdicts_by_hand():
    """rcfd.report.claims: above / lowest / within against hand-computed 95% intervals over three
    seeds; one seed is inconclusive whatever its means; a claim holds only if all its criteria do."""
    from scipy.stats import t as student

    from rcfd.report.claims import claims_markdown, claims_table

    h = student.ppf(0.975, 2) / math.sqrt(3)  # the half-width of three seeds with sd 1: 2.48

    def runs(values):  # {method: mean}: three seeds at mean - 1, mean, mean + 1 (sd 1)
        return pd.DataFrame([{"task": "movies", "method": m, "seed": s, "avg_reward": v + d, "alignment": v + d}
                             for m, v in values.items() for s, d in enumerate((-1, 0, 1))])

    def verdict(values, claims, query=None):
        frame = runs(values) if query is None else runs(values).query(query)
        verdicts = set(claims_table(frame, claims, ["movies"])["verdict"])  # one per claim and use case
        assert len(verdicts) == 1
        return verdicts.pop()

    above = {"C1": {"claim": "R β=0 above the demos", "movies": [{"above": "avg_reward", "method": "beta0"}]}}
    assert math.hypot(h, h) == pytest.approx(3.51, abs=0.01)
    assert verdict({"beta0": 14.0, "demonstrations": 10.0}, above) == "holds"  # 4 ± 3.51 above 0
    assert verdict({"beta0": 12.0, "demonstrations": 10.0}, above) == "inconclusive"  # 2 ± 3.51
    assert verdict({"beta0": 6.0, "demonstrations": 10.0}, above) == "does not hold"  # -4 ± 3.51
    assert verdict({"beta0": 100.0, "demonstrations": 10.0}, above, "seed == 1") == "inconclusive"  # one seed
    # lowest: RCfD within the lowest's interval (10 + 2.48) holds; RCfD at 16, its own interval
    # [13.52, 18.48] above 12.48, does not
    lowest = {"C3": {"claim": "lowest A", "movies": [{"lowest": "alignment", "method": "rcfd", "among": ["sft", "base"]}]}}
    assert verdict({"rcfd": 12.0, "sft": 10.0, "base": 20.0}, lowest) == "holds"
    assert verdict({"rcfd": 16.0, "sft": 10.0, "base": 20.0}, lowest) == "does not hold"
    # within 15% of 100 (the reference's interval is not used): 105 ± 2.48% holds, 130 ± 2.48% does
    # not; one run of a searched sweep is enough
    within = {"C2": {"claim": "a β matches", "movies": [{"within": "avg_reward", "method": ["beta0.1", "beta0.3"]}]}}
    table = claims_table(runs({"beta0.1": 130.0, "beta0.3": 105.0, "demonstrations": 100.0}), within, ["movies"])
    assert table["verdict"].item() == "holds" and "R β=0.3 +5%±2" in table["numbers"].item()
    within["C2"]["movies"][0]["method"] = ["beta0.1"]
    assert verdict({"beta0.1": 130.0, "demonstrations": 100.0}, within) == "does not hold"
    # both criteria of a claim must hold: 102 is within 15% of 100, but 2 ± 3.51 is not surely above it
    both = {"C5": {"claim": "two", "movies": [{"within": "avg_reward", "method": "rcfd2"},
                                               {"above": "alignment", "method": "rcfd2"}]}}
    table = claims_table(runs({"rcfd2": 102.0, "demonstrations": 100.0}), both, ["movies"])
    assert table["criterion verdict"].tolist() == ["holds", "inconclusive"] and set(table["verdict"]) == {"inconclusive"}
    md = claims_markdown(table, {"C5": "two"}, {"movies": "t.md"}, {"movies": "movie reviews"})
    assert md.splitlines()[2].startswith("| **C5** two | [**inconclusive**](t.md) (3 seeds): R +2%")
    # nearest over (R, A), in units of the demonstrations' means (100, 100): rcfd2 at (110, 110) is
    # 0.1·√2 = 0.14 away ± h/100 = 0.0248 (delta method), the nearest alpha run at (130, 130) 0.42: nearer
    near = {"C5": {"claim": "nearer", "movies": [{"nearest": ["avg_reward", "alignment"], "method": "rcfd2",
                                                   "among": ["alpha0.01", "alpha0.02"]}]}}
    points = {"rcfd2": 110.0, "alpha0.01": 130.0, "alpha0.02": 150.0, "demonstrations": 100.0}
    table = claims_table(runs(points), near, ["movies"])
    assert table["verdict"].item() == "holds"
    assert table["numbers"].item() == f"distance to demos (R, A) 0.14±{h / 100:.2f} vs R α=0.01 0.42±{h / 100:.2f}"
    assert verdict({**points, "rcfd2": 160.0}, near) == "does not hold"
    # alternatives: one that holds is enough; none that can hold: does not hold
    alternatives = {"C5": {"claim": "either", "movies": {"any": [
        [{"within": "avg_reward", "method": "rcfd2"}], near["C5"]["movies"]]}}}
    assert verdict({**points, "rcfd2": 125.0}, alternatives) == "holds"  # 25% off, but nearer than 130
    assert verdict({**points, "rcfd2": 160.0}, alternatives) == "does not hold"
    table = claims_table(runs({**points, "rcfd2": 125.0}), alternatives, ["movies"])
    assert table["alternative"].tolist() == [1, 2] and table["criterion verdict"].tolist() == ["does not hold", "holds"]
    with pytest.raises(InputError, match="claims.C1.movies: no metric 'avg_reward' of run"):
        claims_table(runs({"beta0": 14.0}), above, ["movies"])
