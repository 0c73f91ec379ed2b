"""``python -m sweeps`` runs the CLI."""

from sweeps.cli import main

main()
