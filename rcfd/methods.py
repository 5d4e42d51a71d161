"""Method names used as the `method` wildcard, and what each one trains.

base          the initial policy, no training, sampled with the task's `generate` settings
sft           supervised fine-tuning on the demonstrations
beta<b>       RL on R_beta = R_RM - b * KL (beta0 is the paper's "R, beta=0": pure maximisation)
rcfd          RL on R_CfD = -(R_RM(x, y) - R_RM(x, y_demo))^2, beta = 0
rcfd_energy   RCfD towards the demonstrations' reward distribution rather than their conditional mean:
              the energy score of a prompt's samples against its demo (beyond the paper; rewards.py)
rcfd_shuffled RCfD with the demonstrations' rewards shuffled across training prompts: a control for
              whether the per-prompt target matters (the target keeps its distribution, loses its prompt)
alpha<a>      RL on R_alpha = R_RM + a * R_length, R_length = -|y| (use case 3), beta = 0
rcfd2         RL on RCfD with two rewards, R_RM and R_length, each calibrated and whitened (use case 3)
dpo           DPO on (demonstration, corrupted summary) pairs, from the SFT policy ("DPO with SFT")
dpo_early     the same DPO run stopped early (the paper's early-stopped checkpoint)
<rl method>_ppo  the same RL method trained with PPO and a value head (rcfd/train/ppo.py) instead of RLOO
              (config `algorithm: ppo` renames every RL method so; `snakemake rloo_vs_ppo` compares)
greedy, temp<t>, nucleus<p>
              decoding baselines of the base model (paper, use case 1): greedy decoding,
              temperature t, nucleus sampling with top-p p; no training
demonstrations  the human demonstrations themselves (evaluated, never trained)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

_NUMBER = r"[0-9]+(\.[0-9]+)?"
PPO = "_ppo"  # suffix of an RL method trained with PPO
# the method grammar, once: the trained methods (the `train` rule's wildcard), then every method
TRAINED_REGEX = rf"sft|(rcfd2|rcfd_shuffled|rcfd_energy|rcfd|beta{_NUMBER}|alpha{_NUMBER})({PPO})?|dpo_early|dpo"
METHOD_REGEX = rf"base|{TRAINED_REGEX}|greedy|temp{_NUMBER}|nucleus{_NUMBER}|demonstrations"


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "base", "sft", "rl", "dpo", "decoding", "demonstrations"
    objective: str | None = None  # "reward", "rcfd", "rcfd2" or "rcfd_energy" for kind "rl"
    beta: float = 0.0
    alpha: float = 0.0  # weight of the length reward R_length = -|y|
    decoding: tuple[tuple[str, float], ...] = ()  # generate-setting overrides, kind "decoding"
    algorithm: str = "rloo"  # the RL optimiser, kind "rl": "rloo" or "ppo"
    shuffled_targets: bool = False  # RCfD's demonstration rewards permuted across training prompts

    @property
    def label(self) -> str:
        return self.base_label + (" (PPO)" if self.algorithm == "ppo" else "")

    @property
    def base_label(self) -> str:
        """The label without the optimiser (RCfD for rcfd and rcfd_ppo)."""
        if self.kind == "rl" and self.objective == "reward":
            return f"R α={self.alpha:g}" if self.alpha else f"R β={self.beta:g}"
        if self.objective == "rcfd2":
            return "RCfD (two rewards)"
        if self.objective == "rcfd_energy":
            return "RCfD (energy score)"
        if self.shuffled_targets:
            return "RCfD (shuffled targets)"
        if self.kind == "dpo":
            return "DPO+SFT early-stopped" if self.name == "dpo_early" else "DPO with SFT"
        if self.kind == "decoding":
            key, value = self.decoding[0]
            return "greedy" if key == "temperature" and value == 0 else \
                {"temperature": "temperature", "top_p": "nucleus"}[key] + f" {value:g}"
        return {"base": "base", "sft": "SFT", "rl": "RCfD", "demonstrations": "demonstrations"}[self.kind]

    @property
    def trained(self) -> bool:
        return self.kind in ("sft", "rl", "dpo")

    @property
    def length_block(self) -> bool:
        """In the paper's length-reward block (Table 1, use case 3): R_alpha, two-reward RCfD and the
        early-stopped DPO baseline shown beside them; their A averages the R_RM and length scores."""
        return self.alpha > 0 or self.objective == "rcfd2" or self.name == "dpo_early"

    @property
    def generation_overrides(self) -> dict[str, float]:
        return dict(self.decoding)


def beta_name(beta: float) -> str:
    return f"beta{beta:g}"


def alpha_name(alpha: float) -> str:
    return f"alpha{alpha:g}"


def with_algorithm(name: str, algorithm: str) -> str:
    """An RL method's name for `algorithm` (beta0 -> beta0_ppo); other methods are unchanged."""
    return name + PPO if algorithm == "ppo" and parse_method(name).kind == "rl" else name


def parse_method(name: str) -> Method:
    if not re.fullmatch(METHOD_REGEX, name):
        raise ValueError(f"unknown method {name!r}; expected base, sft, rcfd, rcfd_shuffled, rcfd_energy, demonstrations, "
                         "beta<number>, "
                         "greedy, temp<number> or nucleus<number> (an RL method may end in _ppo)")
    if name.endswith(PPO):
        return dataclasses.replace(parse_method(name.removesuffix(PPO)), name=name, algorithm="ppo")
    if name.startswith("beta"):
        return Method(name, "rl", "reward", float(name[4:]))
    if name.startswith("alpha"):
        return Method(name, "rl", "reward", 0.0, alpha=float(name[5:]))
    if name in ("rcfd", "rcfd2", "rcfd_energy"):
        return Method(name, "rl", name, 0.0)
    if name == "rcfd_shuffled":
        return Method(name, "rl", "rcfd", 0.0, shuffled_targets=True)
    if name in ("dpo", "dpo_early"):
        return Method(name, "dpo")
    if name == "greedy":
        return Method(name, "decoding", decoding=(("temperature", 0.0),))
    if name.startswith("temp"):
        return Method(name, "decoding", decoding=(("temperature", float(name[4:])),))
    if name.startswith("nucleus"):
        return Method(name, "decoding", decoding=(("top_p", float(name[7:])),))
    return Method(name, name)


def configurable_method(name: str) -> bool:
    """Whether `name` may be listed under a task's `methods`: the sweeps (beta<b>, alpha<a>) come
    from `betas` and `alphas`, PPO names from `algorithm`, and the demonstrations are always evaluated."""
    if not re.fullmatch(METHOD_REGEX, name):
        return False
    m = parse_method(name)
    return m.name != "demonstrations" and m.algorithm == "rloo" and not (m.objective == "reward")


def split_run(run: str) -> tuple[str, str]:
    """A run key of the training tables, `<method>` or `<method> seed<N>`, as (method, seed or "")."""
    method, _, seed = run.partition(" ")
    return method, seed


def run_sort_key(run: str) -> tuple:
    """sort_key for a run key of the training tables."""
    method, seed = split_run(run)
    return sort_key(method), seed


def sort_key(name: str) -> tuple:
    """Table order (the paper's): demonstrations, base, decoding baselines, SFT, DPO, R beta ascending,
    RCfD; then the length-reward block: early-stopped DPO, R alpha ascending, two-reward RCfD."""
    m = parse_method(name)
    order = {"demonstrations": 0, "base": 1, "decoding": 2, "sft": 3, "dpo": 4, "rl": 5}[m.kind]
    return (m.length_block, order, m.objective in ("rcfd", "rcfd2", "rcfd_energy"), m.objective == "rcfd_energy",
            m.shuffled_targets, m.beta, m.alpha,
            m.decoding, m.algorithm == "ppo")
