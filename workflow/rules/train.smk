# Policies: SFT, DPO, R_beta / R_alpha for every value of the sweeps, and RCfD; one folder per (task, method, seed).


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
