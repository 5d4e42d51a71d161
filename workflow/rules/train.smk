# The reward model and the demonstrations' rewards; then the policies: SFT, DPO, R_beta / R_alpha for every
# value of the sweeps, and RCfD, one folder per (task, method, seed).


rule train_reward_model:
    input:
        data=f"{R}/data/{{task}}/rm_data.jsonl",
        prompts=f"{R}/data/{{task}}/prompts.jsonl",
        base=model_input("reward_base"),
    output:
        model=directory(f"{R}/reward_models/{{task}}/model"),
        metrics=f"{R}/reward_models/{{task}}/metrics.json",
        histogram=multiext(f"{R}/reward_models/{{task}}/demo_rewards", ".pdf", ".png"),
    params:
        p=lambda w: as_json({"train": with_runtime(config[w.task]["reward_model"]["train"], config[w.task]["data"]["seed"]),
                             "score": score_params(w.task)["reward_model"]}),
        base=model_arg("reward_base", "base"),
    priority: 1  # the longest jobs: start them as soon as their inputs exist
    threads: config["threads_per_job"]
    resources:
        **job_resources("train_reward_model"),
    log:
        f"{LOGS}/train_reward_model/{{task}}.log",
    benchmark:
        f"{BENCH}/train_reward_model/{{task}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd train_reward_model --threads {threads} --params {params.p:q} --base {params.base:q} --data {input.data:q}"
        " --prompts {input.prompts:q} --out {output.model:q} --metrics {output.metrics:q} > {log:q} 2>&1"


rule score_demos:
    input:
        prompts=f"{R}/data/{{task}}/prompts.jsonl",
        rm=lambda w: reward_model_input(w.task),
    output:
        f"{R}/data/{{task}}/demos_scored.jsonl",
    params:
        p=lambda w: as_json(score_params(w.task)),
        rm=reward_model_arg,
    threads: config["threads_per_job"]
    resources:
        **job_resources("score_demos"),
    log:
        f"{LOGS}/score_demos/{{task}}.log",
    benchmark:
        f"{BENCH}/score_demos/{{task}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd score_demos --threads {threads} --params {params.p:q} --rm {params.rm:q} --prompts {input.prompts:q}"
        " --out {output:q} > {log:q} 2>&1"


rule train:
    input:
        data=train_data_input,
        policy=policy_input(),
        rm=lambda w: reward_model_input(w.task) if parse_method(w.method).kind == "rl" else [],
        sft=sft_input,
    output:
        directory(f"{R}/runs/{{task}}/{{method}}/seed{{seed}}/policy"),
    wildcard_constraints:
        method=TRAINED_REGEX,
    params:
        p=lambda w: train_params(w.task, w.method, w.seed),
        policy=policy_arg(),
        rm=reward_model_arg,
    priority: 1  # the longest jobs: start them as soon as their inputs exist
    threads: config["threads_per_job"]
    resources:
        **job_resources("train"),
    log:
        f"{LOGS}/train/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{task}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd train --threads {threads} --params {params.p:q} --method {wildcards.method:q} --policy {params.policy:q}"
        " --rm {params.rm:q} --data {input.data:q} --out {output:q} > {log:q} 2>&1"
