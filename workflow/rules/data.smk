# Prompts and demonstrations, the reward model, and the demonstrations' rewards.


rule prepare_movies:
    input:
        reviews=lambda w: source_input("movies"),
        policy=policy_input("movies"),
    output:
        prompts=f"{R}/data/movies/prompts.jsonl",
        rm_data=f"{R}/data/movies/rm_data.jsonl",
    params:
        p=as_json(config["movies"]["data"]) if "movies" in config else "{}",
        policy=policy_arg("movies"),
        reviews=lambda w, input: input.reviews or "none",
    threads: config["threads_per_job"]
    resources:
        **job_resources("prepare_movies"),
    log:
        f"{LOGS}/prepare_movies.log",
    benchmark:
        f"{BENCH}/prepare_movies.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd prepare --threads {threads} --params {params.p:q} --reviews {params.reviews} --policy {params.policy}"
        " --prompts {output.prompts} --rm-data {output.rm_data} > {log} 2>&1"


rule prepare_wiki:
    input:
        dump=lambda w: source_input("wiki"),
        policy=policy_input("wiki"),
    output:
        prompts=f"{R}/data/wiki/prompts.jsonl",
    params:
        p=as_json(config["wiki"]["data"]) if "wiki" in config else "{}",
        policy=policy_arg("wiki"),
        dump=lambda w, input: input.dump or "none",
    threads: config["threads_per_job"]
    resources:
        **job_resources("prepare_wiki"),
    log:
        f"{LOGS}/prepare_wiki.log",
    benchmark:
        f"{BENCH}/prepare_wiki.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd prepare-wiki --threads {threads} --params {params.p:q} --dump {params.dump} --policy {params.policy}"
        " --prompts {output.prompts} > {log} 2>&1"


rule prepare_summaries:
    input:
        source=lambda w: source_input("summaries"),
        policy=policy_input("summaries"),
    output:
        prompts=f"{R}/data/summaries/prompts.jsonl",
        rm_data=f"{R}/data/summaries/rm_data.jsonl",
    params:
        # a function: the instruction's "{aspect}" is not a wildcard
        p=lambda w: as_json(config["summaries"]["data"]),
        policy=policy_arg("summaries"),
        source=lambda w, input: input.source or "none",
    threads: config["threads_per_job"]
    resources:
        **job_resources("prepare_summaries"),
    log:
        f"{LOGS}/prepare_summaries.log",
    benchmark:
        f"{BENCH}/prepare_summaries.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd prepare-summaries --threads {threads} --params {params.p:q} --source {params.source}"
        " --policy {params.policy} --prompts {output.prompts} --rm-data {output.rm_data} > {log} 2>&1"


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
        "python -m rcfd train-rm --threads {threads} --params {params.p:q} --base {params.base} --data {input.data}"
        " --prompts {input.prompts} --out {output.model} --metrics {output.metrics} > {log} 2>&1"


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
        "python -m rcfd score-demos --threads {threads} --params {params.p:q} --rm {params.rm} --prompts {input.prompts}"
        " --out {output} > {log} 2>&1"
