# `make slurm-test`: the smoke DAG on a real one-node Slurm cluster set up on this machine (root,
# Debian; see tests/slurm/run.sh). PYTHON: an interpreter with `pip install -e '.[slurm]'` done.
PYTHON ?= python3

.PHONY: slurm-test
slurm-test:
	PYTHON=$(PYTHON) bash tests/slurm/run.sh
