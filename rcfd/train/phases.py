"""The phases of an RLOO step that rcfd.train.trl_patches.StepPhases times, in the order they run
(a module of its own so that the report reads them without importing torch)."""

PHASES = ("generate", "reward", "logprobs_no_grad", "train_forward", "backward", "optimizer")
