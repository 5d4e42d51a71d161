# Tables and figures, built from the per-run metrics and scored samples.


rule table6:
    input:
        metrics=lambda w: run_outputs("movies", "metrics.csv"),
    output:
        table_files("table6"),
    params:
        p=as_json(
            {
                "name": "table6",
                "task": "movies",
                "caption": "Table 6 (movie reviews): alignment score A, average reward, length and diversity",
                "config_hash": config_hash(config),
            }
        ),
        prefix=prefix_of,
        benchmarks=BENCH,
    threads: config["threads_per_job"]
    log:
        f"{LOGS}/table6.log",
    benchmark:
        f"{BENCH}/table6.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd table --threads {threads} --params {params.p:q} --metrics {input.metrics} --benchmarks {params.benchmarks}"
        " --out {params.prefix} > {log} 2>&1"


rule figure3:
    input:
        scored=lambda w: run_outputs("movies", "scored.jsonl"),
        metrics=lambda w: run_outputs("movies", "metrics.csv"),
    output:
        figure_files("figure3"),
    params:
        p=as_json({"name": "figure3", "config_hash": config_hash(config)}),
        prefix=prefix_of,
    threads: config["threads_per_job"]
    log:
        f"{LOGS}/figure3.log",
    benchmark:
        f"{BENCH}/figure3.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd figure --threads {threads} --params {params.p:q} --scored {input.scored} --metrics {input.metrics} --out {params.prefix} > {log} 2>&1"
