"""The evaluation steps (workflow/rules/evaluate.smk): sampling, scoring every sample, and the LLM judge's validation."""

from __future__ import annotations

import json

from ..report.steps import write_step_provenance, write_step_table
from ..utils import InputError, from_params, log, read_jsonl, read_rows, write_csv, write_jsonl


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

    from .run import EvalModels, demonstrations_as_run, evaluate_run

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
    # seconds vary from host to host: kept out of metrics.csv (a result, the same on every host) and
    # written into its provenance, where time_breakdown reads the judge's share of evaluate
    timing = {"judge_seconds": row.pop("judge_seconds")} if "judge_seconds" in row else {}
    write_jsonl(a.scored, scored)
    write_csv(pd.DataFrame([row]), a.metrics)
    write_csv(curve, a.curve)
    write_step_provenance(a.metrics, a.params, **timing)


def step_validate_judge(a) -> None:
    """How well the LLM judge answers each of its questions on labelled cases built from the task's
    data (rcfd.evaluate.judge_validation): AUC, accuracy, calibrated Yes threshold, informative or not."""
    import pandas as pd

    from . import judge as J
    from . import judge_validation as V

    task = a.params["task"]
    cfg = from_params(J.JudgeConfig, {**a.params["judge"], "device": a.params["device"],
                                      "cpu_bf16": a.params.get("cpu_bf16", True)}, f"{task}.evaluate.judge")
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
            table.append(V.summarise_question(question, [], []))
            continue
        for variant, wording in {"configured": template, **vcfg.variants.get(question, {})}.items():
            soft = judge.soft_scores([J.fill(wording, c, example, judge.cut) for c in cases])
            table.append(V.summarise_question(question, cases, soft, variant))
            cases_out += [dict(c, question=question, variant=variant, soft=float(x)) for c, x in zip(cases, soft)]
    write_jsonl(a.cases, cases_out)
    table = [dict(r, judge_model=J.judge_name(a.judge)) for r in V.select_wording(table, vcfg.min_auc)]
    caption = (f"Judge validation ({task}, {cfg.label or 'LLM judge'}): per question and wording, the AUC of the soft "
               "score P(Yes)/(P(Yes)+P(No)) on labelled cases. The val half chooses each question's wording (selected: "
               "the best val AUC, the configured one on ties) and its Yes threshold; the test half reports: AUC (all "
               "cases; hard: against the harder case family only), accuracy of the argmax answer (its Yes rate beside "
               "it) and of the calibrated threshold. A question whose selected wording's test AUC is below "
               f"{vcfg.min_auc} is not informative and left out of the tables and Δ_demo")
    write_step_table(a, pd.DataFrame(table), caption, decimals=3)
