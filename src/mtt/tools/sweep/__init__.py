"""`mtt sweep` and `mtt tune`: many `mtt train` + `mtt evaluate` runs, each a child of one parent MLflow run.

`mtt sweep -S n_train=1e4,3e4,1e5` trains and evaluates once per value; `mtt tune` lets Optuna's TPE sampler
choose the train params of each trial from params.yaml's `tune.space`. The parent gets a table (sweep.csv /
tune.csv), a plot, and the counts of children and failures.

- `command.py`: the command-line options of both commands;
- `overrides.py`: the `-S key=value` train overrides: which is swept, which are fixed, values typed and written back;
- `sweep.py`: `mtt sweep`, one child per value of one train param;
- `tune.py`: `mtt tune`, one child per Optuna trial;
- `children.py`: what both share: the parent run, and each child run with its train and evaluate subprocesses;
- `results.py`: the parent's table and plot, and its counts of children and failures.
"""
