# Prompts and demonstrations (and the reward model's data), one rule per use case.


# one rule per use case (prepare_movies, prepare_wiki, prepare_summaries): its data source (an offline
# asset, or none for a hub data set) -> prompts with demonstrations (+ the reward model's data); one more
# per other prompt length of `predictability` (prepare_movies_p30, ...: the use case's step)
for task, use_case, has_rm_data in data_tasks():

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
            step=f"prepare_{use_case}",
        threads: config["threads_per_job"]
        resources:
            **job_resources(f"prepare_{use_case}"),
        log:
            f"{LOGS}/prepare_{task}.log",
        benchmark:
            f"{BENCH}/prepare_{task}.tsv"
        conda:
            "../envs/rcfd.yaml"
        shell:
            "python -m rcfd {params.step:q} --threads {threads} --params {params.p:q} --source {params.source:q}"
            " --policy {params.policy:q} {params.outputs} > {log:q} 2>&1"
