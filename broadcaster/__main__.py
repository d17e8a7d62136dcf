"""``python -m broadcaster`` runs the command line."""

from .cli import run

run()
