"""The phase runner: papermill chains a phase's notebooks, resumably, with a report and no secrets.

Modules, one concern each (papermill's layout):

* :mod:`~helpers.runner.catalog` — where tasks come from (the registry, or a registry file);
* :mod:`~helpers.runner.plan` — run order, parallel groups, ``--from/--to/--only``;
* :mod:`~helpers.runner.params` — declared parameters, injection, validation, secret refusal;
* :mod:`~helpers.runner.engine` — the ``runbook`` papermill engine (a warm kernel, clean slate per notebook);
* :mod:`~helpers.runner.execute` — one notebook: papermill, the error, the reported steps and checks;
* :mod:`~helpers.runner.schedule` — the chain's decisions: what starts, what a failure stops, Ctrl-C;
* :mod:`~helpers.runner.chain` — the workers and their kernels, the ledger as the chain runs;
* :mod:`~helpers.runner.ledger` — ``ledger.json`` and finding the last run;
* :mod:`~helpers.runner.report` — ``summary.md``, ``summary.html``, the terminal table;
* :mod:`~helpers.runner.redact` — scrubbing of notebooks, logs and reports;
* :mod:`~helpers.runner.runs` — start / resume / plan (setup and finish around the chain);
* :mod:`~helpers.runner.progress` — terminal progress.

The command line is :mod:`helpers.runner.cli` (``runbook``).
"""
