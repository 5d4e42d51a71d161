"""The paper's claims as data: each declared in the config (`claims`) with its criterion, written
before the run, and judged here over seeds with 95% confidence intervals.

A claim has, per use case, a list of criteria that must all hold. A criterion compares one metric
of the runs' metrics files (mean over seeds, with the Student-t 95% half-width of
rcfd.report.tables.ci95):

  above / below  `method`'s mean is above (below) `vs`'s (default the demonstrations): holds when the
                 interval of the difference, ± √(h_method² + h_vs²), lies on that side of 0, does not
                 hold when it lies on the other, inconclusive when it straddles 0
  lowest         `method`'s mean is the lowest of it and `among`, or lies within the 95% interval of
                 the lowest: holds when method's mean ≤ lowest + h_lowest, does not hold when its own
                 interval lies above that, inconclusive otherwise
  within         `method`'s mean is within `margin` (relative) of `vs`'s: holds when |gap| + h ≤
                 margin (h: the half-width in the same relative units), does not hold when |gap| − h >
                 margin; with several `method`s (a searched sweep), it holds when one of them does
  nearest        over several metrics (a list), `method`'s point is at least as near `vs`'s as the
                 nearest of `among`: distances in units of |vs's mean| per metric, their half-widths
                 by the delta method; then as `lowest` on the distances

A missing interval (one seed) makes a criterion inconclusive: one seed decides nothing. A claim's
verdict for a use case is its criteria's: does not hold if one does not, holds if all hold,
inconclusive otherwise. A use case may instead give alternatives (`{any: [[...], [...]]}`, e.g.
C5: within 15% on both axes, or nearer the demonstrations than every α run): the claim holds if
one alternative holds, does not hold if none can, and is inconclusive otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..methods import parse_method
from ..utils import InputError
from .tables import summarise

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive"
KINDS = ("above", "below", "lowest", "within", "nearest")


@dataclass
class Criterion:
    kind: str
    metric: str | list[str]  # a list for `nearest`
    method: list[str]
    vs: str = "demonstrations"
    among: list[str] = field(default_factory=list)
    margin: float = 0.15
    sweep: bool = False  # `method` given as a list (a searched sweep): its runs are named in the numbers

    @classmethod
    def parse(cls, spec: dict, where: str) -> Criterion:
        kinds = [k for k in KINDS if k in spec]
        if len(kinds) != 1:
            raise InputError(f"config key '{where}': a criterion names one of {list(KINDS)} (got {sorted(spec)})")
        unknown = set(spec) - {*KINDS, "method", "vs", "among", "margin"}
        if unknown:
            raise InputError(f"config key '{where}': unknown key(s) {sorted(unknown)}")
        methods = spec.get("method")
        if not methods:
            raise InputError(f"config key '{where}': no 'method'")
        if kinds[0] in ("lowest", "nearest") and not spec.get("among"):
            raise InputError(f"config key '{where}': '{kinds[0]}' compares with the runs of 'among'; none given")
        return cls(kinds[0], spec[kinds[0]], [methods] if isinstance(methods, str) else list(methods),
                   spec.get("vs", "demonstrations"), list(spec.get("among", [])), float(spec.get("margin", 0.15)),
                   sweep=not isinstance(methods, str))

    def runs(self) -> list[str]:
        return [*self.method, *([] if self.kind == "lowest" else [self.vs]), *self.among]

    def metrics(self) -> list[str]:
        return list(self.metric) if isinstance(self.metric, list) else [self.metric]


def _stat(stats: pd.DataFrame, method: str, metric: str) -> tuple[float, float]:
    return float(stats.loc[method, metric]), float(stats.loc[method, metric + "_ci95"])


def _side(low: float, high: float) -> str:
    """The verdict of "the quantity is > 0" from its interval [low, high]."""
    if math.isnan(low) or math.isnan(high):
        return OPEN
    return HOLDS if low > 0 else FAILS if high < 0 else OPEN


METRICS = {"avg_reward": "R", "alignment": "A", "mean_tokens": "length", "distinct_2": "distinct-2"}


def _label(method: str) -> str:
    return "demos" if method == "demonstrations" else parse_method(method).label


def judge(c: Criterion, stats: pd.DataFrame) -> tuple[str, str]:
    """(verdict, the numbers behind it) of one criterion, from per-method means and half-widths."""
    metric = ", ".join(METRICS.get(m, m) for m in c.metrics())

    def show(m, label=True):
        mean, h = _stat(stats, m, c.metric)
        return (f"{_label(m)} " if label else "") + f"{mean:.2f}" + ("" if math.isnan(h) else f"±{h:.2f}")

    if c.kind in ("above", "below"):
        (m, hm), (r, hr) = _stat(stats, c.method[0], c.metric), _stat(stats, c.vs, c.metric)
        diff, h = (m - r, math.hypot(hm, hr)) if c.kind == "above" else (r - m, math.hypot(hm, hr))
        return _side(diff - h, diff + h), f"{metric} {show(c.method[0], False)} vs {show(c.vs)}"
    if c.kind == "nearest":
        d = {x: distance(stats, x, c.vs, c.metrics()) for x in [c.method[0], *c.among]}
        nearest = min(c.among, key=lambda x: d[x][0])
        return _at_most(d[c.method[0]], d[nearest]), \
            (f"distance to {_label(c.vs)} ({metric}) "
             f"{_show(*d[c.method[0]])} vs {_label(nearest)} {_show(*d[nearest])}")
    if c.kind == "lowest":
        lowest = min(c.among, key=lambda x: stats.loc[x, c.metric])
        verdict = _at_most(_stat(stats, c.method[0], c.metric), _stat(stats, lowest, c.metric))
        return verdict, f"{metric} {show(c.method[0], False)} vs {show(lowest)}"
    r, _ = _stat(stats, c.vs, c.metric)
    verdicts, shown = [], []
    for method in c.method:
        m, hm = _stat(stats, method, c.metric)
        gap, h = abs(m / r - 1), hm / abs(r)
        verdicts.append(_side(c.margin - gap - h, c.margin - gap + h))
        shown.append((f"{_label(method)} " if c.sweep else "") + f"{100 * (m / r - 1):+.0f}%"
                     + ("" if math.isnan(h) else f"±{100 * h:.0f}"))
    return either(verdicts), f"{metric}{':' if c.sweep else ''} " + ", ".join(shown) + f" vs {_label(c.vs)}"


def _show(mean: float, h: float) -> str:
    return f"{mean:.2f}" + ("" if math.isnan(h) else f"±{h:.2f}")


def _at_most(value: tuple[float, float], best: tuple[float, float]) -> str:
    """Whether a (mean, half-width) is at most the best one's, or within its interval: holds when
    mean ≤ best + h_best, does not hold when mean − h > best + h_best, inconclusive otherwise."""
    (m, hm), (b, hb) = value, best
    if math.isnan(hm) or math.isnan(hb):
        return OPEN
    return HOLDS if m <= b + hb else FAILS if m - hm > b + hb else OPEN


def distance(stats: pd.DataFrame, method: str, ref: str, metrics: list[str]) -> tuple[float, float]:
    """(distance, 95% half-width) of `method`'s point from `ref`'s over `metrics`, each in units of
    |ref's mean|; the half-width from the metrics' half-widths by the delta method."""
    gaps, widths = [], []
    for metric in metrics:
        (m, hm), (r, _) = _stat(stats, method, metric), _stat(stats, ref, metric)
        gaps.append((m - r) / abs(r))
        widths.append(hm / abs(r))
    d = math.hypot(*gaps)
    h = math.hypot(*(g * w for g, w in zip(gaps, widths))) / d if d > 0 else math.hypot(*widths)
    return d, h


def combine(verdicts: list[str]) -> str:
    return FAILS if FAILS in verdicts else HOLDS if all(v == HOLDS for v in verdicts) else OPEN


def either(verdicts: list[str]) -> str:
    """The verdict of alternatives: holds if one holds, does not hold if every one does not."""
    return HOLDS if HOLDS in verdicts else FAILS if all(v == FAILS for v in verdicts) else OPEN


def parse_claims(claims: dict) -> dict[str, dict]:
    """{claim: {"claim": text, task: [[Criterion, ...], ...]}} (the use case's alternatives, each a list of
    criteria that must all hold) from the config's `claims`; one line naming a bad key."""
    out = {}
    for name, spec in claims.items():
        if "claim" not in spec:
            raise InputError(f"config key 'claims.{name}': no 'claim' (its wording)")
        out[name] = {"claim": spec["claim"]}
        for task, criteria in spec.items():
            if task == "claim":
                continue
            alternatives = criteria["any"] if isinstance(criteria, dict) else [criteria]
            out[name][task] = [[Criterion.parse(c, f"claims.{name}.{task}[{i}]") for i, c in enumerate(alternative)]
                               for alternative in alternatives]
    return out


def claims_table(metrics: pd.DataFrame, claims: dict, tasks: list[str]) -> pd.DataFrame:
    """One row per claim, use case and criterion: the numbers (means ± 95% half-widths over the
    seeds), the criterion's verdict and the claim's for that use case (`verdict`)."""
    rows = []
    for name, spec in parse_claims(claims).items():
        for task in tasks:
            if task not in spec:
                continue
            runs = metrics[metrics["task"] == task]
            start, alternatives = len(rows), []
            for k, criteria in enumerate(spec[task], start=1):
                judged = []
                for c in criteria:
                    missing = sorted(set(c.runs()) - set(runs["method"]))
                    absent = [m for m in c.metrics() if m not in runs.columns]
                    if missing or absent:
                        raise InputError(f"claims.{name}.{task}: no metric {absent or c.metric!r} of run(s) "
                                         f"{missing or c.runs()} among the {task} metrics")
                    seeds = runs[runs["method"].isin(c.runs())]
                    verdict, numbers = judge(c, summarise(seeds, "method", c.metrics()))
                    judged.append(verdict)
                    rows.append({"claim": name, "task": task, "alternative": k, "criterion": c.kind,
                                 "numbers": numbers, "seeds": int(seeds.groupby("method")["seed"].nunique().min()),
                                 "criterion verdict": verdict})
                alternatives.append(combine(judged))
            for r in rows[start:]:
                r["verdict"] = either(alternatives)
    if not rows:
        raise InputError("claims: no claim is declared for the configured use cases")
    return pd.DataFrame(rows)


CELL = 150  # characters of a README cell at most


def claims_markdown(table: pd.DataFrame, texts: dict[str, str], links: dict[str, str], names: dict[str, str]) -> str:
    """The claims table as the README shows it: one row per claim, one column per use case, each
    cell the verdict (linked to the use case's table) and its numbers, at most CELL characters."""
    tasks = list(dict.fromkeys(table["task"]))
    lines = ["| claim | " + " | ".join(names.get(t, t) for t in tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for claim, rows in table.groupby("claim", sort=False):
        cells = []
        for task in tasks:
            r = rows[rows["task"] == task]
            if r.empty:
                cells.append("n/a")
                continue
            seeds = int(r["seeds"].min())
            head = f"[**{r['verdict'].iloc[0]}**]({links[task]}) ({seeds} seed{'s' * (seeds > 1)}): "
            cell = head + " or ".join("; ".join(a["numbers"]) for _, a in r.groupby("alternative"))
            cells.append(cell if len(cell) <= CELL else cell[:CELL - 1] + "…")
        lines.append(f"| **{claim}** {texts[claim]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
