"""Method names used as the `method` wildcard, and what each one trains.

base          the initial policy, no training, sampled with the task's `generate` settings
sft           supervised fine-tuning on the demonstrations
beta<b>       RL on R_beta = R_RM - b * KL (beta0 is the paper's "R, beta=0": pure maximisation)
rcfd          RL on R_CfD = -(R_RM(x, y) - R_RM(x, y_demo))^2, beta = 0
greedy, temp<t>, nucleus<p>
              decoding baselines of the base model (paper, use case 1): greedy decoding,
              temperature t, nucleus sampling with top-p p; no training
demonstrations  the human demonstrations themselves (evaluated, never trained)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"[0-9]+(\.[0-9]+)?"
METHOD_REGEX = rf"base|sft|rcfd|beta{_NUMBER}|greedy|temp{_NUMBER}|nucleus{_NUMBER}|demonstrations"


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "base", "sft", "rl", "decoding", "demonstrations"
    objective: str | None = None  # "reward" or "rcfd" for kind "rl"
    beta: float = 0.0
    decoding: tuple[tuple[str, float], ...] = ()  # generate-setting overrides, kind "decoding"

    @property
    def label(self) -> str:
        if self.kind == "rl" and self.objective == "reward":
            return f"R β={self.beta:g}"
        if self.kind == "decoding":
            key, value = self.decoding[0]
            return "greedy" if key == "temperature" and value == 0 else \
                {"temperature": "temperature", "top_p": "nucleus"}[key] + f" {value:g}"
        return {"base": "base", "sft": "SFT", "rl": "RCfD", "demonstrations": "demonstrations"}[self.kind]

    @property
    def trained(self) -> bool:
        return self.kind in ("sft", "rl")

    @property
    def generation_overrides(self) -> dict[str, float]:
        return dict(self.decoding)


def beta_name(beta: float) -> str:
    return f"beta{beta:g}"


def parse_method(name: str) -> Method:
    if not re.fullmatch(METHOD_REGEX, name):
        raise ValueError(f"unknown method {name!r}; expected base, sft, rcfd, demonstrations, beta<number>, "
                         "greedy, temp<number> or nucleus<number>")
    if name.startswith("beta"):
        return Method(name, "rl", "reward", float(name[4:]))
    if name == "rcfd":
        return Method(name, "rl", "rcfd", 0.0)
    if name == "greedy":
        return Method(name, "decoding", decoding=(("temperature", 0.0),))
    if name.startswith("temp"):
        return Method(name, "decoding", decoding=(("temperature", float(name[4:])),))
    if name.startswith("nucleus"):
        return Method(name, "decoding", decoding=(("top_p", float(name[7:])),))
    return Method(name, name)


def sort_key(name: str) -> tuple:
    """Table order: demonstrations, base, decoding baselines, SFT, R beta ascending, RCfD (the paper's order)."""
    m = parse_method(name)
    order = {"demonstrations": 0, "base": 1, "decoding": 2, "sft": 3, "rl": 4}[m.kind]
    return (order, m.objective == "rcfd", m.beta, m.decoding)
