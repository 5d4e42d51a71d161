"""The report steps (workflow/rules/report.smk): the paper's tables and figures, the analyses beside them,
and where the time went. Every table is written as CSV, Markdown and LaTeX with its provenance."""

from __future__ import annotations

from pathlib import Path

from ..utils import InputError, log, read_rows


def write_step_provenance(result, params: dict, **extra) -> None:
    from ..provenance import write_provenance

    write_provenance(result, params, **extra)


def write_step_table(a, table, caption: str, decimals: int = 2, **extra) -> None:
    """What every table step ends with: CSV, Markdown and LaTeX at --out, the table in the log,
    provenance beside the CSV (with the config hash the workflow passes)."""
    from .tables import write_table

    paths = write_table(table, a.out, caption, decimals)
    log.info("\n%s", table.to_string(index=False))
    write_step_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"), **extra)


def step_table(a) -> None:
    """One of the paper's tables (rules table1, table5, table6: params.name) from the runs' metrics."""
    from .tables import TABLES, build_table, caption_of, load_metrics

    name = a.params["name"]
    if name not in TABLES:
        raise InputError(f"table {name!r}: expected one of {sorted(TABLES)}")
    cfg = TABLES[name]
    metrics, suffixes, notes = _judge_validated(a, load_metrics(a.metrics))
    write_step_table(a, build_table(metrics, cfg, a.params.get("labels"), suffixes.get(cfg.task)),
                 caption_of(metrics, cfg) + notes.get(cfg.task, ""), cfg.decimals, benchmarks=_benchmarks(a.benchmarks))


def _judge_validated(a, metrics):
    """The metrics with the judge's columns as its validation allows (rcfd.report.tables.validate_judge_columns):
    --judge-validation <results>/judge/<task>.csv ..., --scored <results>/runs/<task>/<run>/scored.jsonl ..."""
    import pandas as pd

    from .tables import validate_judge_columns

    if not a.judge_validation:
        return metrics, {}, {}
    validations = {Path(p).stem: pd.read_csv(p) for p in a.judge_validation}
    scored: dict[str, list] = {}
    for path in a.scored or []:  # runs/<task>/<method>/seed<k>/scored.jsonl
        scored.setdefault(Path(path).parent.parent.parent.name, []).extend(read_rows(path, ["method", "seed"]))
    return validate_judge_columns(metrics, {t: pd.DataFrame(rows) for t, rows in scored.items()}, validations)


def step_comparison(a) -> None:
    """This run's numbers next to the paper's, for the tables `params.tables` (their tasks' metrics)."""
    from .tables import comparison, load_metrics

    caption = ("This run next to the paper (arXiv 2404.19409; LLaMA-2-7B / Alpaca-7B policies, chat-Llama-70B "
               "judge), per reproduced table, method and the paper's metric; 'measured as' is the column of this "
               "run's table (small models: compare shapes, not absolute values; proxies are named as such)")
    metrics, suffixes, _ = _judge_validated(a, load_metrics(a.metrics))
    write_step_table(a, comparison(metrics, a.params["tables"], a.params.get("labels"), suffixes),
                 caption + ("; judge columns as validated (results/judge/), the ones not informative left out"
                            if suffixes else ""))


def step_gold_vs_proxy(a) -> None:
    """Gold vs proxy (rcfd.report.gold): R_RM (the proxy) beside the judge's soft scores (the gold) on
    params.questions that its validation (--judge-validation) finds informative, per method and along
    the training of params.curves (their snapshots' scored samples among --scored); the table at --out,
    the figure at --figure."""
    import pandas as pd

    from ..evaluate.judge_validation import informative
    from .gold import gold_vs_proxy, run_of
    from .plots import gold_vs_proxy_figure

    rows = []
    for path in a.scored:
        method, step = run_of(path)
        rows += [dict(r, method=method, step=step) for r in read_rows(path, ["method", "seed", "reward"])]
    validation = pd.read_csv(a.judge_validation[0]).to_dict("records") if a.judge_validation else []
    kept = informative(validation)
    questions = [q for q in a.params["questions"] if q in kept]
    dropped = [q for q in a.params["questions"] if q not in kept]
    table = gold_vs_proxy(pd.DataFrame(rows), questions, a.params["final_step"])
    paths = gold_vs_proxy_figure(table, questions, a.params["curves"], a.figure)
    write_step_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))
    caption = (f"Gold vs proxy ({a.params['task']}): per method (step: an RL run's last training step, the base model "
               "at 0, none for the others) and "
               f"along the training of {', '.join(a.params['curves'])} (their adapters at steps "
               f"{', '.join(map(str, a.params['snapshot_steps']))}): the proxy R_RM and the gold, the judge's mean soft "
               "score P(Yes)/(P(Yes)+P(No)) per question, over the judged samples of every seed, ± the half-width of a "
               "95% normal interval, and each one's change (Δ) from the base model. Over-optimisation: R_RM up, gold down"
               + (f"; not used as gold, the judge's validation finding them not informative: {', '.join(dropped)}"
                  if dropped else ""))
    write_step_table(a, table, caption, decimals=3)


def step_rloo_vs_ppo(a) -> None:
    """RLOO next to PPO: the RL runs' metrics and, from each policy folder's train_log.csv, the
    wall seconds of its training steps (--policies in the order of --metrics)."""
    from .analysis import algorithm_comparison
    from .tables import load_metrics

    seconds = {Path(policy).parent.parent.name: log_frame["step_time"].dropna().tolist()
               for policy, log_frame in _training_logs(a.policies, ["step_time"])}
    caption = ("RLOO (TRL) next to PPO with a value head (rcfd/train/ppo.py), the same RL methods, data, reward, LoRA and "
               "steps: alignment score A, average reward, length, diversity, and the median and fastest wall seconds "
               "of a step (jobs sharing the machine slow the median)")
    write_step_table(a, algorithm_comparison(load_metrics(a.metrics), seconds), caption, decimals=3)


def _training_logs(policies: list[str], columns: list[str]):
    """(policy folder, its train_log.csv as a frame) for each folder; one line naming a missing file or column.
    The frame's attrs["roofline"] holds the folder's roofline.json (rcfd.train.floors) where the job wrote one."""
    import json

    import pandas as pd

    for policy in policies:
        path = Path(policy) / "train_log.csv"
        if not path.exists():
            raise InputError(f"{path}: missing (the training log of {policy})")
        frame = pd.read_csv(path)
        if not set(columns) <= set(frame.columns):
            raise InputError(f"{path}: needs column(s) {columns}")
        roofline = Path(policy) / "roofline.json"
        if roofline.exists():
            frame.attrs["roofline"] = json.loads(roofline.read_text())
        yield policy, frame


def _run_logs(policies: list[str], columns: list[str], with_task: bool = False) -> dict:
    """The training logs keyed by run: `<method>`, `<method> seed<N>` where the folders
    (<task>/<method>/seed<N>/policy) hold several seeds, so that no run hides another; `<task>/`
    in front with_task."""
    runs = [(Path(policy), frame) for policy, frame in _training_logs(policies, columns)]
    several_seeds = len({p.parent.name for p, _ in runs}) > 1
    return {(f"{p.parents[2].name}/" if with_task else "") + p.parent.parent.name
            + (f" {p.parent.name}" if several_seeds else ""): frame for p, frame in runs}


def _appendix(a, name: str) -> None:
    """An appendix table from every run's scored samples (rcfd.report.analysis.APPENDIX; `_scored_runs`)."""
    from .analysis import APPENDIX, APPENDIX_BUILDERS

    cfg = APPENDIX[name]
    table = APPENDIX_BUILDERS[name](_scored_runs(a), a.params["alignment"], cfg)
    write_step_table(a, table, cfg.caption, cfg.decimals)


def _scored_runs(a):
    """Every run's scored samples (--scored), one row per sample (task, method, seed, id, reward);
    --metrics are the same runs' metrics files, in the same order: they give the task."""
    import pandas as pd

    from .tables import load_metrics

    if len(a.scored) != len(a.metrics):
        raise InputError(f"{len(a.scored)} scored files but {len(a.metrics)} metrics files")
    frames = []
    for scored, metrics in zip(a.scored, a.metrics):
        (run,) = load_metrics([metrics]).to_dict("records")
        rows = pd.DataFrame(read_rows(scored, ["id", "method", "seed", "reward"]))
        if set(rows["method"]) != {run["method"]} or set(rows["seed"]) != {run["seed"]}:
            raise InputError(f"{scored} is not the run of {metrics}")
        frames.append(rows.assign(task=run["task"]))
    return pd.concat(frames, ignore_index=True)


def _levelled(policies: list[str]) -> dict[tuple[str, str], list[bool]]:
    """(task, method) -> per seed, whether its training R_RM levelled off, from each RL policy folder
    <results>/runs/<task>/<method>/seed<s>/policy (its train_log.csv)."""
    from .analysis import plateau

    out: dict[tuple[str, str], list[bool]] = {}
    for policy, log_frame in _training_logs(policies, ["monitor/reward_model"]):
        run = Path(policy).parent
        levelled = plateau(log_frame["monitor/reward_model"])["plateau"]
        out.setdefault((run.parent.parent.name, run.parent.name), []).append(levelled)
    return out


def step_predictability(a) -> None:
    """Beyond the paper: A against how much of its demonstration's reward the prompt predicts, per
    prompt length and method (rcfd.report.predictability), the figure at --out, the table at --table;
    --policies: the RL runs' policy folders (whether their training levelled off)."""
    from .plots import predictability_figure
    from .predictability import CAPTION, predictability_table

    p = a.params
    table = predictability_table(_scored_runs(a), p["prompt_tokens"], p["alignment"], _levelled(a.policies))
    paths = predictability_figure(table, a.out)
    write_step_provenance(paths[0], p, config_hash=p.get("config_hash"))
    a.out = a.table
    write_step_table(a, table, CAPTION, decimals=3)


def step_appendix_alignment(a) -> None:
    """Appendix: the alignment score's sensitivity to its density estimator (bins, smoothing), every run."""
    _appendix(a, "appendix_alignment")


def step_calibration(a) -> None:
    """Appendix: each method's squared error to its own demonstration's reward, decomposed (one task's runs)."""
    _appendix(a, "calibration")


CLAIMS_CAPTION = ("Each claim of the paper judged over this run's seeds (rcfd/report/claims.py; the criteria are "
                  "declared in the config's `claims` before the run): means ± 95% half-widths over the seeds; "
                  "*inconclusive* where the interval straddles the criterion or a single seed gives none")


def step_claims(a) -> None:
    """The claims' verdicts (rcfd.report.claims): <out>.csv one row per claim, use case and criterion
    with the numbers and verdicts; <out>.md the table the README shows (one row per claim, one column
    per use case, linked to its table: params.links)."""
    from ..utils import atomic, write_csv
    from .claims import claims_markdown, claims_table
    from .tables import load_metrics

    p = a.params
    table = claims_table(load_metrics(a.metrics), p["claims"], p["tasks"])
    out = Path(a.out)
    write_csv(table, out.with_suffix(".csv"))
    md = f"{CLAIMS_CAPTION}\n\n" + claims_markdown(table, {k: v["claim"] for k, v in p["claims"].items()},
                                                     p["links"], p["names"])
    with atomic(out.with_suffix(".md")) as tmp:
        tmp.write_text(md, encoding="utf-8")
    log.info("\n%s", md)
    write_step_provenance(out.with_suffix(".csv"), p, config_hash=p.get("config_hash"))


def _benchmarks(folder: str | None) -> dict[str, float]:
    """Wall seconds per job, from Snakemake's benchmark files."""
    from .timing import read_benchmarks

    if not folder or not Path(folder).is_dir():
        return {}
    return {r.path: float(r.s) for r in read_benchmarks(folder).itertuples()}


def step_time_breakdown(a) -> None:
    """Where the run's job-minutes went, per rule (rcfd.report.timing.time_breakdown), from the benchmark
    files under --benchmarks; params.rules: the workflow's rules. With --policies (the RL runs'
    policy folders), also where an RL step's time went (rcfd.report.timing.rl_step_breakdown), written
    beside it as rl_step_breakdown.*."""
    import pandas as pd

    from ..provenance import read_provenance
    from .timing import read_benchmarks, time_breakdown

    if not Path(a.benchmarks).is_dir():
        raise InputError(f"--benchmarks {a.benchmarks}: no such folder")
    jobs = read_benchmarks(a.benchmarks)
    judge = None
    if a.metrics:  # the judge's seconds in each evaluation, from its metrics' provenance
        judge = pd.Series([read_provenance(m).get("judge_seconds") for m in a.metrics], dtype=float)
    caption = (f"Where the run's time goes: job-minutes per rule from Snakemake's benchmark files "
               f"({len(jobs)} jobs; jobs that ran side by side both count, so the total exceeds the wall time; "
               f"CPU-minutes over job-minutes: the cores a job kept busy"
               + ("; 'of which the LLM judge': the evaluation jobs' minutes in the judge, from their metrics' provenance, "
                  "inside evaluate's and not counted again in the total; validate_judge: its validation)"
                  if judge is not None and judge.notna().any() else ")"))
    write_step_table(a, time_breakdown(jobs, a.params["rules"], judge), caption)
    if a.policies:  # and where an RL step's time goes, from the RL runs' training logs
        from .timing import rl_step_breakdown

        logs = _run_logs(a.policies, ["step_time"], with_task=True)
        a.out = str(Path(a.out).with_name("rl_step_breakdown"))
        write_step_table(a, rl_step_breakdown(logs),
                     "Where an RL step's wall time goes (mean seconds per step, rl.StepPhases): sampling the completions "
                     "(generate), the reward callable (reward), TRL's no-grad log-probabilities of the sampling policy and, "
                     "with beta > 0, the reference (logprobs_no_grad), the loss's forward and backward passes, the "
                     "optimizer step, and the rest of TRL's step (other: tokenising, advantages, metrics); last row: each "
                     "phase's share of every timed step. Floors (rcfd.train.floors, from the GEMM throughput and memory "
                     "bandwidth each training job measured on its machine, at the run's mean prompt and completion "
                     "lengths): sampling as prefill plus each decoded token's weight and cache reads or FLOPs, whichever "
                     "is slower; train (forward + backward) as its model FLOPs; x floor: the measured time over it")


def step_figure(a) -> None:
    """One of the paper's figures (rules figure2-5: params.name) from the runs' scored samples,
    metrics and log-likelihood curves; with --table, the figure's numbers as a table where it has one
    (Figure 4: rcfd.report.analysis.front_table)."""
    import pandas as pd

    from .plots import FIGURES
    from .tables import load_metrics

    name = a.params["name"]
    if name not in FIGURES:
        raise InputError(f"figure {name!r}: expected one of {sorted(FIGURES)}")
    scored = pd.DataFrame([r for path in a.scored for r in read_rows(path, ["id", "method", "seed"])])
    curves = pd.concat([pd.read_csv(p) for p in a.curves], ignore_index=True) if a.curves else None
    figure, metrics = FIGURES[name], load_metrics(a.metrics)
    paths = figure.draw(scored=scored, metrics=metrics, curves=curves, train_tokens=a.params.get("train_tokens"),
                        prefix=a.out)
    write_step_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))
    if figure.table and a.table:  # its numbers, as a table
        a.out = a.table
        write_step_table(a, figure.table(metrics), figure.caption, decimals=3)


def step_training_curves(a) -> None:
    """The RL runs' training curves (rcfd.report.plots.training_curves) from their policy folders'
    train_log.csv (--policies <run>/policy ...): the objective and, where logged, the samples' raw
    R_RM and length, beside the training demonstrations' means (--demos, the scored demonstrations);
    with --table, also whether each curve levelled off (rcfd.report.analysis.training_plateaus) as a table."""
    from .plots import training_curves

    logs = _run_logs(a.policies, ["step", "reward"])
    demos = None
    if a.demos:  # the training demonstrations' mean reward and length: the reference lines
        rows = read_rows(a.demos, ["demo_reward", "demo_tokens"], ["demo_reward", "demo_tokens"], split="train")
        demos = {k: sum(r[k] for r in rows) / len(rows) for k in ("demo_reward", "demo_tokens")}
    paths = training_curves(logs, a.out, demos)
    write_step_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))
    if a.table:
        from .analysis import TRAINING_CAPTION, training_plateaus

        a.out = a.table
        write_step_table(a, training_plateaus(logs, demos), TRAINING_CAPTION, decimals=3)
