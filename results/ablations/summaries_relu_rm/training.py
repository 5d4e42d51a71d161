"""Quarter means of each RL run's training log (objective, raw R_RM, length) and the empty share of the last
quarter. Run from the repository root: python results/ablations/summaries_relu_rm/training.py"""
import os

import pandas as pd
root, task = "results/ablations/summaries_relu_rm/run", "summaries"
methods = ["beta0", "beta0.12", "rcfd", "alpha0.005", "alpha0.01", "alpha0.015", "alpha0.02", "rcfd2"]
print("| run | objective by quarter | R_RM by quarter | length by quarter | empty (last quarter) | step sd of objective |")
print("|---|---|---|---|---|---|")
for m in methods:
    p = f"{root}/runs/{task}/{m}/seed0/policy/train_log.csv"
    if not os.path.exists(p): print(f"| {m} | missing |"); continue
    d = pd.read_csv(p); d = d[d["reward"].notna()]
    q = pd.qcut(d["step"], 4, labels=False)
    g = d.groupby(q)
    fmt = lambda s, k=2: " / ".join(f"{v:.{k}f}" for v in s)
    emp = d["monitor/empty"][q == 3].mean() if "monitor/empty" in d else float("nan")
    print(f"| {m} | {fmt(g['reward'].mean())} | {fmt(g['monitor/reward_model'].mean())} | {fmt(g['monitor/length'].mean(),1)} | {emp:.2f} | {d['reward'].std():.2f} |")
