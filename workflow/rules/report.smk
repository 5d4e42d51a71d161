# Tables and figures, built from the per-run metrics, log-lik curves and scored samples.
# One named rule per paper table/figure (`snakemake table5`), generated from the registries of
# rcfd.report.tables and rcfd.report.plots; they differ only in the use case whose runs they read.
# Each flags its CSV / PNG for the HTML report (`snakemake --report report.html`), with a caption
# in workflow/report/<name>.rst; the flag leaves the output paths as they are.


for name, spec in PAPER_TABLES.items():  # table1, table5, table6 (rcfd.report.tables.TABLES)

    rule:
        name:
            name
        input:
            metrics=lambda w, task=spec.task: run_outputs(task, "metrics.csv"),
            scored=lambda w, task=spec.task: run_outputs(task, "scored.jsonl") if judge_validation(task) else [],
            judge_validation=lambda w, task=spec.task: judge_validation(task),
        output:
            in_report(table_files(name), name, spec.task),
        params:
            p=table_params(name, spec.task),
            prefix=prefix_of,
            benchmarks=BENCH,
            judge=judge_validation_option,
        threads: config["threads_per_job"]
        resources:
            **job_resources(name),
        log:
            f"{LOGS}/{name}.log",
        benchmark:
            f"{BENCH}/{name}.tsv"
        conda:
            "../envs/rcfd.yaml"
        shell:
            "python -m rcfd table --threads {threads} --params {params.p:q} --metrics {input.metrics:q} {params.judge}"
            " --benchmarks {params.benchmarks:q} --out {params.prefix:q} > {log:q} 2>&1"


for name, spec in PAPER_FIGURES.items():  # figure2 to figure5 (rcfd.report.plots.FIGURES)

    rule:
        name:
            name
        input:
            scored=lambda w, task=spec.task: run_outputs(task, "scored.jsonl"),
            metrics=lambda w, task=spec.task: run_outputs(task, "metrics.csv"),
            curves=lambda w, task=spec.task: run_outputs(task, "curve.csv"),
        output:
            in_report(figure_outputs(name), name, spec.task),
        params:
            p=lambda w, name=name, task=spec.task: figure_params(name, task),
            prefix=prefix_of,
            table=table_option,
        threads: config["threads_per_job"]
        resources:
            **job_resources(name),
        log:
            f"{LOGS}/{name}.log",
        benchmark:
            f"{BENCH}/{name}.tsv"
        conda:
            "../envs/rcfd.yaml"
        shell:
            "python -m rcfd figure --threads {threads} --params {params.p:q} --scored {input.scored:q}"
            " --metrics {input.metrics:q} --curves {input.curves:q} --out {params.prefix:q} {params.table} > {log:q} 2>&1"


# This run's numbers next to the paper's, for every reproduced table whose task ran.
rule comparison:
    input:
        metrics=lambda w: tasks_run_outputs("metrics.csv"),
        scored=lambda w: tasks_run_outputs("scored.jsonl") if tasks_judge_validation() else [],
        judge_validation=lambda w: tasks_judge_validation(),
    output:
        in_report(table_files("comparison"), "comparison"),
    params:
        p=lambda w: as_json({"name": "comparison", "tables": reproduced_tables(),
                             "config_hash": {t: task_config_hash(t) for t in config["tasks"]}}),
        prefix=prefix_of,
        judge=judge_validation_option,
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
        "python -m rcfd comparison --threads {threads} --params {params.p:q} --metrics {input.metrics:q} {params.judge}"
        " --out {params.prefix:q} > {log:q} 2>&1"


# The paper's claims judged over the seeds (`snakemake claims`; config `claims`): the README's table.
rule claims:
    input:
        metrics=lambda w: [f for task in claimed_tasks() for f in run_outputs(task, "metrics.csv")],
    output:
        in_report(claims_files(), "claims"),
    params:
        p=lambda w: as_json(claims_params()),
        prefix=prefix_of,
    resources:
        **job_resources("claims"),
    threads: config["threads_per_job"]
    log:
        f"{LOGS}/claims.log",
    benchmark:
        f"{BENCH}/claims.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd claims --threads {threads} --params {params.p:q} --metrics {input.metrics:q}"
        " --out {params.prefix:q} > {log:q} 2>&1"


# Where the run's job-minutes went, per rule, from the benchmark files: the last job of a run (its
# inputs are every other table and figure, so every job it accounts for has finished).
rule time_breakdown:
    input:
        run_targets(),
        policies=lambda w: [p for task in config["tasks"] for p in rl_runs(task, "policy")],
        metrics=lambda w: tasks_run_outputs("metrics.csv"),
    output:
        in_report(table_files("time_breakdown"), "time_breakdown"),
        table_files("rl_step_breakdown"),
    params:
        p=lambda w: as_json({"rules": workflow_rules()}),
        benchmarks=BENCH,
        policies=lambda w, input: f"--policies {' '.join(shlex.quote(p) for p in input.policies)}" if input.policies else "",
        prefix=prefix_of,
    resources:
        **job_resources("time_breakdown"),
    threads: 1
    log:
        f"{LOGS}/time_breakdown.log",
    benchmark:
        f"{BENCH}/time_breakdown.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd time_breakdown --threads {threads} --params {params.p:q} --benchmarks {params.benchmarks:q}"
        " {params.policies} --metrics {input.metrics:q} --out {params.prefix:q} > {log:q} 2>&1"


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
        step="appendix_alignment",
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
        "python -m rcfd {params.step:q} --threads {threads} --params {params.p:q} --scored {input.scored:q}"
        " --metrics {input.metrics:q} --out {params.prefix:q} > {log:q} 2>&1"


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
        step="calibration",
    resources:
        **job_resources("calibration"),
    log:
        f"{LOGS}/calibration/{{task}}.log",
    benchmark:
        f"{BENCH}/calibration/{{task}}.tsv"


# Beyond the paper (`snakemake predictability`): A against how much of its demonstration's reward the
# prompt predicts, the movie reviews at several prompt lengths (rcfd/report/predictability.py).
rule predictability:
    input:
        scored=lambda w: predictability_runs("scored.jsonl"),
        metrics=lambda w: predictability_runs("metrics.csv"),
        policies=lambda w: predictability_runs("policy", rl_only=True),
    output:
        figure=in_report(figure_files("predictability"), "predictability"),
        table=table_files("predictability"),
    params:
        p=lambda w: predictability_params(),
        prefix=lambda w, output: prefix_of(w, output.figure),
        table=lambda w, output: prefix_of(w, output.table),
    resources:
        **job_resources("predictability"),
    threads: config["threads_per_job"]
    log:
        f"{LOGS}/predictability.log",
    benchmark:
        f"{BENCH}/predictability.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd predictability --threads {threads} --params {params.p:q} --scored {input.scored:q}"
        " --metrics {input.metrics:q} --policies {input.policies:q} --out {params.prefix:q} --table {params.table:q}"
        " > {log:q} 2>&1"


# The RL runs' training-reward curves (first seed), to see whether training reached a plateau.
rule training_curves:
    input:
        policies=lambda w: rl_runs(w.task, "policy"),
        demos=f"{R}/data/{{task}}/demos_scored.jsonl",
    output:
        figure_files("training_{{task}}"),  # expand() keeps {task} a wildcard
        table_files("training_{{task}}"),
    params:
        p=lambda w: as_json({"name": f"training_{w.task}", "config_hash": task_config_hash(w.task)}),
        prefix=prefix_of,
        table=table_option,
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
        "python -m rcfd training_curves --threads {threads} --params {params.p:q} --policies {input.policies:q}"
        " --demos {input.demos:q} --out {params.prefix:q} {params.table} > {log:q} 2>&1"


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
        "python -m rcfd rloo_vs_ppo --threads {threads} --params {params.p:q} --metrics {input.metrics:q}"
        " --policies {input.policies:q} --out {params.prefix:q} > {log:q} 2>&1"


# Beyond the paper (`snakemake gold_vs_proxy`): the validated judge's soft scores (gold) next to
# R_RM (proxy), per method and along training (rcfd/report/gold.py).
if gold_runs():

    rule gold_vs_proxy:
        input:
            scored=lambda w: run_outputs(GOLD["task"], "scored.jsonl") + snapshot_outputs("scored.jsonl"),
            judge_validation=lambda w: judge_validation(GOLD["task"]),
        output:
            table_files("gold_vs_proxy"),
            figure_files("gold_vs_proxy"),
        params:
            p=lambda w: gold_params(),
            prefix=prefix_of,
            figure=lambda w, output: os.path.splitext(output[3])[0],
            judge=lambda w, input: path_options([("judge_validation", input.judge_validation[0])])
            if input.judge_validation else "",
        threads: 1
        resources:
            **job_resources("gold_vs_proxy"),
        log:
            f"{LOGS}/gold_vs_proxy.log",
        benchmark:
            f"{BENCH}/gold_vs_proxy.tsv"
        conda:
            "../envs/rcfd.yaml"
        shell:
            "python -m rcfd gold_vs_proxy --threads {threads} --params {params.p:q} --scored {input.scored:q}"
            " {params.judge} --out {params.prefix:q} --figure {params.figure:q} > {log:q} 2>&1"
