"""rcfd: Reward Calibration from Demonstration (arXiv 2404.19409), reproduced as a workflow."""

__version__ = "0.1.0"
