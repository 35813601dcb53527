"""Benchmarks: dlsupervisor side by side with Celery and RQ, doing the same database work.

`python -m bench` runs every measurement and prints the table; bench/README.md holds the
command, the machine and the latest results.  Each measurement is one module with a
`run(world)` function; `systems/` starts and stops the three systems the same way.
"""
