"""The CLI's exit codes (DESIGN.md contract), shared by the runner, the nightly and the CLI."""

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_REGRESSION = 0, 1, 2, 3
