# Prompts and demonstrations, the reward model, and the demonstrations' rewards.


# one rule per use case (prepare_movies, prepare_wiki, prepare_summaries): its data source (an offline
# asset, or none for a hub data set) -> prompts with demonstrations (+ the reward model's data)
for task, has_rm_data in (("movies", True), ("wiki", False), ("summaries", True)):

    rule:
        name:
            f"prepare_{task}"
        input:
            source=lambda w, task=task: source_input(task),
            policy=policy_input(task),
        output:
            **prepare_outputs(task, has_rm_data),
        params:
            # a function: a summary instruction's "{aspect}" is not a wildcard
            p=lambda w, task=task: as_json(config[task]["data"]),
            policy=policy_arg(task),
            source=lambda w, input: input.source or "none",
            outputs=lambda w, output: path_options(output.items()),
            step=f"prepare_{task}",
        threads: config["threads_per_job"]
        resources:
            **job_resources(f"prepare_{task}"),
        log:
            f"{LOGS}/prepare_{task}.log",
        benchmark:
            f"{BENCH}/prepare_{task}.tsv"
        conda:
            "../envs/rcfd.yaml"
        shell:
            "python -m rcfd {params.step:q} --threads {threads} --params {params.p:q} --source {params.source:q}"
            " --policy {params.policy:q} {params.outputs} > {log:q} 2>&1"


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
