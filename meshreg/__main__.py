"""Lets `python -m meshreg` run the CLI."""

from meshreg.cli import run

run()
