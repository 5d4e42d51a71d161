# Tables and figures, built from the per-run metrics, log-lik curves and scored samples.
# One named rule per paper table/figure (`snakemake table5`); they differ only in what they read.
# Each flags its CSV / PNG for the HTML report (`snakemake --report report.html`), with a caption
# in workflow/report/<name>.rst; the flag leaves the output paths as they are.


rule table6:
    input:
        metrics=lambda w: run_outputs("movies", "metrics.csv"),
    output:
        in_report(table_files("table6"), "table6", "movies"),
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
        in_report(table_files("table5"), "table5", "wiki"),
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
        in_report(figure_files("figure3"), "figure3", "movies"),
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
        in_report(figure_files("figure2"), "figure2", "wiki"),
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
        in_report(figure_files("figure5"), "figure5", "wiki"),
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
        in_report(table_files("table1"), "table1", "summaries"),
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
        in_report(figure_files("figure4"), "figure4", "summaries"),
    params:
        p=lambda w: figure_params("figure4", "summaries"),
        prefix=prefix_of,
    resources:
        **job_resources("figure4"),
    log:
        f"{LOGS}/figure4.log",
    benchmark:
        f"{BENCH}/figure4.tsv"


# This run's numbers next to the paper's, for every reproduced table whose task ran.
rule comparison:
    input:
        metrics=lambda w: tasks_run_outputs("metrics.csv"),
    output:
        in_report(table_files("comparison"), "comparison"),
    params:
        p=lambda w: as_json({"name": "comparison", "tables": reproduced_tables(),
                             "config_hash": {t: task_config_hash(t) for t in config["tasks"]}}),
        prefix=prefix_of,
    resources:
        **job_resources("comparison"),
    threads: config["threads_per_job"]
    log:
        f"{LOGS}/comparison.log",
    benchmark:
        f"{BENCH}/comparison.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd comparison --threads {threads} --params {params.p:q} --metrics {input.metrics}"
        " --out {params.prefix} > {log} 2>&1"


# Appendix: the alignment score's sensitivity to its estimator (bins, smoothing), every task run.
rule appendix_alignment:
    input:
        scored=lambda w: tasks_run_outputs("scored.jsonl"),
        metrics=lambda w: tasks_run_outputs("metrics.csv"),
    output:
        in_report(table_files("appendix_alignment"), "appendix_alignment"),
    params:
        p=lambda w: as_json({"name": "appendix_alignment",
                             "alignment": {t: config[t]["evaluate"]["alignment"] for t in config["tasks"]},
                             "config_hash": {t: task_config_hash(t) for t in config["tasks"]}}),
        prefix=prefix_of,
    resources:
        **job_resources("appendix_alignment"),
    threads: config["threads_per_job"]
    log:
        f"{LOGS}/appendix_alignment.log",
    benchmark:
        f"{BENCH}/appendix_alignment.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd appendix --threads {threads} --params {params.p:q} --scored {input.scored}"
        " --metrics {input.metrics} --out {params.prefix} > {log} 2>&1"


# Appendix: each method's squared error to its own demonstration's reward, decomposed (one table per task).
use rule appendix_alignment as calibration with:
    input:
        scored=lambda w: run_outputs(w.task, "scored.jsonl"),
        metrics=lambda w: run_outputs(w.task, "metrics.csv"),
    output:
        table_files("calibration_{{task}}"),  # expand() keeps {task} a wildcard
    params:
        p=lambda w: as_json({"name": "calibration", "alignment": {w.task: config[w.task]["evaluate"]["alignment"]},
                             "config_hash": task_config_hash(w.task)}),
        prefix=prefix_of,
    resources:
        **job_resources("calibration"),
    log:
        f"{LOGS}/calibration/{{task}}.log",
    benchmark:
        f"{BENCH}/calibration/{{task}}.tsv"


# The RL runs' training-reward curves (first seed), to see whether training reached a plateau.
rule training_curves:
    input:
        policies=lambda w: rl_runs(w.task, "policy"),
    output:
        figure_files("training_{{task}}"),  # expand() keeps {task} a wildcard
    params:
        p=lambda w: as_json({"name": f"training_{w.task}", "config_hash": task_config_hash(w.task)}),
        prefix=prefix_of,
    resources:
        **job_resources("training_curves"),
    threads: config["threads_per_job"]
    log:
        f"{LOGS}/training_curves/{{task}}.log",
    benchmark:
        f"{BENCH}/training_curves/{{task}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd training-curves --threads {threads} --params {params.p:q} --policies {input.policies}"
        " --out {params.prefix} > {log} 2>&1"


# RLOO next to PPO on the movie-review use case (`snakemake rloo_vs_ppo`): every RL method trained
# with each optimiser. Not part of `all`: it trains every RL method a second time.
rule rloo_vs_ppo:
    input:
        metrics=lambda w: algorithm_runs("movies", "metrics.csv"),
        policies=lambda w: algorithm_runs("movies", "policy"),
    output:
        table_files("rloo_vs_ppo", f"{R}/tables"),
    params:
        p=lambda w: as_json({"name": "rloo_vs_ppo", "config_hash": task_config_hash("movies")}),
        prefix=prefix_of,
    resources:
        **job_resources("rloo_vs_ppo"),
    threads: config["threads_per_job"]
    log:
        f"{LOGS}/rloo_vs_ppo.log",
    benchmark:
        f"{BENCH}/rloo_vs_ppo.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd algorithms --threads {threads} --params {params.p:q} --metrics {input.metrics}"
        " --policies {input.policies} --out {params.prefix} > {log} 2>&1"
