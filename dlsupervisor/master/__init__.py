"""The master's pieces, each with one job; the loop that runs them is supervisor.Master.

ops        the OS seam: fork, signals, reaping, the handler check (a fake drives unit tests)
pool       the children, how many of each the configuration wants, and what each was started with
deadlines  when a child's work runs out of time, and which children are due a kill
database   the master's store calls: write-behind of outcomes, heartbeats, held-item checks
reload     parse, check, diff: which children a new configuration retires
status     the status file's content, built from the children

Nothing here imports another piece's caller: the graph runs one way, into supervisor.py.
"""
