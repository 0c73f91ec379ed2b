"""The CLI's exit codes (DESIGN.md contract), shared by the runner, the nightly and the CLI."""

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_REGRESSION = 0, 1, 2, 3
# `sweeps run` stopped because the results storage failed (a full disk, an S3 endpoint gone):
# the contract's "1" (not every cell finished), with a one-line message naming the root and the
# cause; the finished cells are kept and running again resumes.
EXIT_STORAGE = EXIT_FAILED
