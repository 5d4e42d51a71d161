"""Per-step table of the two runs' training logs (train_log.csv): the samples' length, share of empty
answers and raw R_RM (the monitor/* columns rcfd.rewards logs every step). Run from the repository root:
python results/ablations/summaries_empty_guard/steps.py"""
import pandas as pd

here = "results/ablations/summaries_empty_guard"
logs = {g: pd.read_csv(f"{here}/run_{g}/runs/summaries/rcfd2/seed0/policy/train_log.csv").dropna(subset=["reward"])
        for g in ("score", "worst")}
cols = {"monitor/length": "length", "monitor/empty": "empty", "monitor/reward_model": "R_RM"}
table = pd.concat({g: d.set_index("step")[list(cols)].rename(columns=cols) for g, d in logs.items()}, axis=1)
print(table.to_markdown(floatfmt=".2f"))
