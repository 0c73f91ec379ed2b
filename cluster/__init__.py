"""cluster: Ray actors pinned to devices, scheduling, retries, job submission.

Imports adv_core only (never sweeps/): the caller hands in cells and a ResultSink.
"""
