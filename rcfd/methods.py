"""Method names used as the `method` wildcard, and what each one trains.

base          the initial policy, no training
sft           supervised fine-tuning on the demonstrations
beta<b>       RL on R_beta = R_RM - b * KL (beta0 is the paper's "R, beta=0": pure maximisation)
rcfd          RL on R_CfD = -(R_RM(x, y) - R_RM(x, y_demo))^2, beta = 0
demonstrations  the human demonstrations themselves (evaluated, never trained)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

METHOD_REGEX = r"base|sft|rcfd|beta[0-9]+(\.[0-9]+)?|demonstrations"


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "base", "sft", "rl", "demonstrations"
    objective: str | None = None  # "reward" or "rcfd" for kind "rl"
    beta: float = 0.0

    @property
    def label(self) -> str:
        if self.kind == "rl" and self.objective == "reward":
            return f"R β={self.beta:g}"
        return {"base": "base", "sft": "SFT", "rl": "RCfD", "demonstrations": "demonstrations"}[self.kind]

    @property
    def trained(self) -> bool:
        return self.kind in ("sft", "rl")


def beta_name(beta: float) -> str:
    return f"beta{beta:g}"


def parse_method(name: str) -> Method:
    if not re.fullmatch(METHOD_REGEX, name):
        raise ValueError(f"unknown method {name!r}; expected base, sft, rcfd, demonstrations or beta<number>")
    if name.startswith("beta"):
        return Method(name, "rl", "reward", float(name[4:]))
    if name == "rcfd":
        return Method(name, "rl", "rcfd", 0.0)
    return Method(name, name)


def sort_key(name: str) -> tuple:
    """Table order: demonstrations, base, SFT, R beta ascending, RCfD (the paper's order)."""
    m = parse_method(name)
    order = {"demonstrations": 0, "base": 1, "sft": 2, "rl": 3}[m.kind]
    return (order, m.objective == "rcfd", m.beta)
