"""``marketfeed`` CLI (typer)."""

from __future__ import annotations

import typer

app = typer.Typer(help="marketfeed: collect market data and persist it.", no_args_is_help=True)


@app.callback()
def _root() -> None:
    """marketfeed: collect market data in real time and on schedules, and persist it."""


@app.command()
def plugins() -> None:
    """List installed plugins with their venues and sinks."""
    from .._plugins import PluginManager

    pm = PluginManager()
    for row in pm.listing():
        typer.echo(f"{row['plugin']}: {row['distribution']}")


def main() -> None:
    """Entry point of the ``marketfeed`` console script."""
    app()
