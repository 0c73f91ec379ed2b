"""Side-by-side speed benchmarks (issue 8): our attacks, training, sweep engine and analysis
against the tools people use today (torchattacks, Ray Tune) and against the floor (a bare
forward + input-gradient loop). Run ``make bench`` or ``python -m benchmarks [--quick]``.

Benchmarks are not tests: nothing here asserts a time. Each item returns ``Measurement``s
(ratio, absolute times, goal) that ``benchmarks.core`` prints as a table and writes as JSON.
"""
