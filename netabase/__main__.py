"""``python -m netabase`` runs the command-line interface."""

from .cli import main

main()
