# RCfD reproduction workflow. Default run: `snakemake --cores all` (config.yaml).
# Other scales: `--configfile configs/smoke.yaml` (integration test), `configs/paper.yaml`.
from snakemake.utils import min_version

min_version("9.0")


# the HTML report's front page (`snakemake --report report.html`); every table and figure in it
# has its caption in workflow/report/
report: "workflow/report/workflow.rst"


# config.yaml is the default run; a --configfile replaces it whole (scales are complete files,
# never merged key by key), while --config KEY=VALUE still overrides single keys.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
