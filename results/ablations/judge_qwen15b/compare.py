"""The 1.5B judge's validation (run/judge/<task>.csv) beside the default run's 135M judge
(results/judge/<task>.csv): per question and wording, validation and test AUC, informative at 0.70.
Run from the repository root: python results/ablations/judge_qwen15b/compare.py"""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
rows = []
for task in ("movies", "wiki", "summaries"):
    new, old = HERE / f"run/judge/{task}.csv", Path(f"results/judge/{task}.csv")
    if not new.exists():
        continue
    merged = pd.read_csv(new).merge(pd.read_csv(old), on=["question", "variant"], how="left", suffixes=("", "_135m"))
    for r in merged.itertuples():
        rows.append({"task": task, "question": r.question, "variant": r.variant,
                     "1.5B AUC val": r.auc_val, "1.5B AUC test": r.auc_test, "1.5B informative (≥ 0.70)": r.informative,
                     "135M AUC val": r.auc_val_135m, "135M AUC test": r.auc_test_135m})
table = pd.DataFrame(rows)
(HERE / "comparison.md").write_text(
    "The 1.5B judge (Qwen2.5-Coder-1.5B-Instruct) vs the default run's 135M judge on the same questions and "
    "wordings; 40 + 40 labelled cases per question (val half, test half). The movie-review cases of the 1.5B "
    "run come from the de-duplicated data, the 135M ones from the data before it.\n\n"
    + table.to_markdown(index=False, floatfmt=".3f") + "\n")
print(table.to_string(index=False))
