# Generation on held-out prompts, then reward, alignment score, log-lik curve, diversity, LLM judge and
# MAUVE per run.


rule generate:
    input:
        data=f"{R}/data/{{task}}/prompts.jsonl",
        policy=policy_input(),
        adapter=adapter_input,
    output:
        f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/generations.jsonl",
    params:
        p=lambda w: generate_params(w.task, w.method, w.seed),
        policy=policy_arg(),
        adapter=lambda w, input: input.adapter or "none",
    threads: config["threads_per_job"]
    resources:
        **job_resources("generate"),
    log:
        f"{LOGS}/generate/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/generate/{{task}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd generate --threads {threads} --params {params.p:q} --policy {params.policy:q} --adapter {params.adapter:q}"
        " --data {input.data:q} --out {output:q} > {log:q} 2>&1"


rule evaluate:
    input:
        data=f"{R}/data/{{task}}/demos_scored.jsonl",
        generations=generations_input,
        policy=policy_input(),
        rm=lambda w: reward_model_input(w.task),
        judge=evaluate_model_input("judge"),
        mauve=evaluate_model_input("mauve"),
        judge_validation=lambda w: evaluate_judge_validation(w.task),
    output:
        scored=f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/scored.jsonl",
        metrics=f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/metrics.csv",
        curve=f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/curve.csv",
    params:
        p=lambda w: evaluate_params(w.task),
        policy=policy_arg(),
        rm=reward_model_arg,
        judge=evaluate_model_arg("judge"),
        features=evaluate_model_arg("mauve"),
        generations=lambda w, input: path_options([("generations", input.generations)]) if input.generations else "",
        judge_validation=evaluate_judge_validation_option,
    threads: config["threads_per_job"]
    resources:
        **job_resources("evaluate"),
    log:
        f"{LOGS}/evaluate/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{task}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd evaluate --threads {threads} --params {params.p:q} --method {wildcards.method:q} --seed {wildcards.seed:q}"
        " --rm {params.rm:q} --policy {params.policy:q} --judge {params.judge:q} --features {params.features:q}"
        " --data {input.data:q} {params.generations} {params.judge_validation}"
        " --scored {output.scored:q} --metrics {output.metrics:q} --curve {output.curve:q} > {log:q} 2>&1"


rule validate_judge:
    input:
        data=f"{R}/data/{{task}}/prompts.jsonl",
        rm_data=lambda w: [f"{R}/data/{w.task}/rm_data.jsonl"] if w.task == "movies" else [],
        judge=evaluate_model_input("judge"),
    output:
        table=multiext(f"{R}/judge/{{task}}", ".csv", ".md", ".tex"),
        cases=f"{R}/judge/{{task}}_cases.jsonl",
    params:
        p=lambda w: judge_validation_params(w.task),
        judge=evaluate_model_arg("judge"),
        rm_data=lambda w, input: path_options([("rm_data", input.rm_data[0])]) if input.rm_data else "",
        prefix=prefix_of,
    threads: config["threads_per_job"]
    resources:
        **job_resources("validate_judge"),
    log:
        f"{LOGS}/validate_judge/{{task}}.log",
    benchmark:
        f"{BENCH}/validate_judge/{{task}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd validate_judge --threads {threads} --params {params.p:q} --judge {params.judge:q}"
        " --data {input.data:q} {params.rm_data} --cases {output.cases:q} --out {params.prefix:q} > {log:q} 2>&1"


# Gold vs proxy (rule gold_vs_proxy): the adapters a run kept along training (rl.snapshot_steps),
# sampled and scored as its final policy is.
use rule generate as generate_snapshot with:
    input:
        data=f"{R}/data/{{task}}/prompts.jsonl",
        policy=policy_input(),
        adapter=f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/policy",
    output:
        f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/snapshots/step{{step}}/generations.jsonl",
    params:
        adapter=lambda w, input: f"{input.adapter}/snapshots/step{w.step}",
    resources:
        **job_resources("generate_snapshot"),
    log:
        f"{LOGS}/generate_snapshot/{{task}}/{{method}}/seed{{seed}}/step{{step}}.log",
    benchmark:
        f"{BENCH}/generate_snapshot/{{task}}/{{method}}/seed{{seed}}/step{{step}}.tsv"


use rule evaluate as evaluate_snapshot with:
    input:
        data=f"{R}/data/{{task}}/demos_scored.jsonl",
        generations=f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/snapshots/step{{step}}/generations.jsonl",
        policy=policy_input(),
        rm=lambda w: reward_model_input(w.task),
        judge=evaluate_model_input("judge"),
        mauve=evaluate_model_input("mauve"),
        judge_validation=lambda w: evaluate_judge_validation(w.task),
    output:
        scored=f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/snapshots/step{{step}}/scored.jsonl",
        metrics=f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/snapshots/step{{step}}/metrics.csv",
        curve=f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/snapshots/step{{step}}/curve.csv",
    resources:
        **job_resources("evaluate_snapshot"),
    log:
        f"{LOGS}/evaluate_snapshot/{{task}}/{{method}}/seed{{seed}}/step{{step}}.log",
    benchmark:
        f"{BENCH}/evaluate_snapshot/{{task}}/{{method}}/seed{{seed}}/step{{step}}.tsv"
