"""Ciao's own tuning engine: a `%tune` cell's study, run with Optuna's ask/tell.

Every trial is an ordinary job of the cell, planned, shipped, submitted, followed and
cancelled through the Manager exactly as a cell's job is (`Manager.launch`), with its
parameters in its environment (trial.py). A supervisor process drives the study
(driver.py, supervisor.py), so it outlives the kernel; the study's record is a run
directory like a job's (record.py): its events for the notebook's view, Optuna's journal
for the sampler and for resuming. The kernel starts, follows and reads studies through
studies.py. Katib's engine (a cluster's Experiment) is chosen beside this one (engines.py).
"""
