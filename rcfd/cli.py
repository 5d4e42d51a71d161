"""`python -m rcfd <step>`: the steps the Snakemake rules call, one function each, named as the rule
and kept beside the code of its stage (rcfd/<stage>/steps.py, as workflow/rules/<stage>.smk).
This module only parses the command line and dispatches.

Every step reads its settings from `--params` (a JSON object built by the workflow from the
validated config), its inputs and outputs from explicit paths, and writes results atomically.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from .utils import InputError, log, setup_logging

# step name (= the rule that calls it) -> (module under rcfd, its path arguments; "+": one or more);
# the module's function step_<name> runs it (`table` serves every paper table, `figure` every figure)
STEPS = {
    "fetch_asset": ("assets", ["out", "downloads"]),
    "build_model": ("assets", ["out", "downloads", "corpus"]),
    "prepare_movies": ("data.steps", ["source", "policy", "prompts", "rm_data", "metrics"]),
    "prepare_wiki": ("data.steps", ["source", "policy", "prompts", "metrics"]),
    "prepare_summaries": ("data.steps", ["source", "policy", "prompts", "rm_data", "metrics"]),
    "train_reward_model": ("train.steps", ["base", "data", "prompts", "out", "metrics"]),
    "score_demos": ("train.steps", ["rm", "prompts", "out"]),
    "train": ("train.steps", ["method", "policy", "rm", "data", "out"]),
    "generate": ("evaluate.steps", ["policy", "adapter", "data", "out"]),
    "evaluate": ("evaluate.steps", ["method", "seed", "rm", "policy", "judge", "features", "data", "generations",
                                 "judge_validation", "scored", "metrics", "curve"]),
    "validate_judge": ("evaluate.steps", ["judge", "data", "rm_data", "cases", "out"]),
    "table": ("report.steps", ["metrics+", "scored+", "judge_validation+", "benchmarks", "out"]),
    "time_breakdown": ("report.steps", ["benchmarks", "policies+", "metrics+", "out"]),
    "figure": ("report.steps", ["scored+", "metrics+", "curves+", "out", "table"]),
    "comparison": ("report.steps", ["metrics+", "scored+", "judge_validation+", "out"]),
    "appendix_alignment": ("report.steps", ["scored+", "metrics+", "out"]),
    "calibration": ("report.steps", ["scored+", "metrics+", "out"]),
    "predictability": ("report.steps", ["scored+", "metrics+", "policies+", "out", "table"]),
    "rloo_vs_ppo": ("report.steps", ["metrics+", "policies+", "out"]),
    "training_curves": ("report.steps", ["policies+", "demos", "out", "table"]),
    "gold_vs_proxy": ("report.steps", ["scored+", "judge_validation+", "out", "figure"]),
    "claims": ("report.steps", ["metrics+", "out"]),
    "bench": ("train.steps", ["shape", "use_case", "out"]),
}


def step_function(name: str):
    """The function that runs step `name`: step_<name> of its module."""
    return getattr(importlib.import_module(f"rcfd.{STEPS[name][0]}"), f"step_{name}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rcfd", description=__doc__)
    sub = parser.add_subparsers(dest="step", required=True)
    for name, (_, args) in STEPS.items():
        fn = step_function(name)
        summary = fn.__doc__.split("\n\n")[0].replace("\n    ", " ")
        sp = sub.add_parser(name, help=summary, description=fn.__doc__)
        sp.add_argument("--params", type=json.loads, default={}, help="the step's settings, as JSON")
        sp.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all)")
        for arg in args:
            many = arg.endswith("+")
            arg = arg.rstrip("+")
            kw = dict(nargs="+") if many else {}
            if arg == "seed":
                kw["type"] = int
            sp.add_argument("--" + arg.replace("_", "-"), dest=arg, **kw)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    setup_logging()
    a = parse_args(argv)
    a.argv = sys.argv[1:] if argv is None else list(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    t0 = time.time()
    try:
        step_function(a.step)(a)
    except InputError as e:
        print(f"rcfd {a.step}: error: {e}", file=sys.stderr)
        return 2
    log.info("%s done in %.1fs", a.step, time.time() - t0)
    return 0
