# Tables and figures, built from the per-run metrics, log-lik curves and scored samples.
# One named rule per paper table/figure (`snakemake table5`); they differ only in what they read.


rule table6:
    input:
        metrics=lambda w: run_outputs("movies", "metrics.csv"),
    output:
        table_files("table6"),
    params:
        p=table_params("table6", "movies"),
        prefix=prefix_of,
        benchmarks=BENCH,
    threads: config["threads_per_job"]
    resources:
        **job_resources("table6"),
    log:
        f"{LOGS}/table6.log",
    benchmark:
        f"{BENCH}/table6.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd table --threads {threads} --params {params.p:q} --metrics {input.metrics} --benchmarks {params.benchmarks}"
        " --out {params.prefix} > {log} 2>&1"


use rule table6 as table5 with:
    input:
        metrics=lambda w: run_outputs("wiki", "metrics.csv"),
    output:
        table_files("table5"),
    params:
        p=table_params("table5", "wiki"),
        prefix=prefix_of,
        benchmarks=BENCH,
    resources:
        **job_resources("table5"),
    log:
        f"{LOGS}/table5.log",
    benchmark:
        f"{BENCH}/table5.tsv"


rule figure3:
    input:
        scored=lambda w: run_outputs("movies", "scored.jsonl"),
        metrics=lambda w: run_outputs("movies", "metrics.csv"),
        curves=lambda w: run_outputs("movies", "curve.csv"),
    output:
        figure_files("figure3"),
    params:
        p=lambda w: figure_params("figure3", "movies"),
        prefix=prefix_of,
    threads: config["threads_per_job"]
    resources:
        **job_resources("figure3"),
    log:
        f"{LOGS}/figure3.log",
    benchmark:
        f"{BENCH}/figure3.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd figure --threads {threads} --params {params.p:q} --scored {input.scored} --metrics {input.metrics}"
        " --curves {input.curves} --out {params.prefix} > {log} 2>&1"


use rule figure3 as figure2 with:
    input:
        scored=lambda w: run_outputs("wiki", "scored.jsonl"),
        metrics=lambda w: run_outputs("wiki", "metrics.csv"),
        curves=lambda w: run_outputs("wiki", "curve.csv"),
    output:
        figure_files("figure2"),
    params:
        p=lambda w: figure_params("figure2", "wiki"),
        prefix=prefix_of,
    resources:
        **job_resources("figure2"),
    log:
        f"{LOGS}/figure2.log",
    benchmark:
        f"{BENCH}/figure2.tsv"


use rule figure2 as figure5 with:
    output:
        figure_files("figure5"),
    params:
        p=lambda w: figure_params("figure5", "wiki"),
        prefix=prefix_of,
    resources:
        **job_resources("figure5"),
    log:
        f"{LOGS}/figure5.log",
    benchmark:
        f"{BENCH}/figure5.tsv"


use rule table6 as table1 with:
    input:
        metrics=lambda w: run_outputs("summaries", "metrics.csv"),
    output:
        table_files("table1"),
    params:
        p=table_params("table1", "summaries"),
        prefix=prefix_of,
        benchmarks=BENCH,
    resources:
        **job_resources("table1"),
    log:
        f"{LOGS}/table1.log",
    benchmark:
        f"{BENCH}/table1.tsv"


use rule figure3 as figure4 with:
    input:
        scored=lambda w: run_outputs("summaries", "scored.jsonl"),
        metrics=lambda w: run_outputs("summaries", "metrics.csv"),
        curves=lambda w: run_outputs("summaries", "curve.csv"),
    output:
        figure_files("figure4"),
    params:
        p=lambda w: figure_params("figure4", "summaries"),
        prefix=prefix_of,
    resources:
        **job_resources("figure4"),
    log:
        f"{LOGS}/figure4.log",
    benchmark:
        f"{BENCH}/figure4.tsv"
