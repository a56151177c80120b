"""The `coder` command: a thin layer that parses options, calls the library and reports.

Each command group lives in its own module with a ``register(cli)`` function. Library errors
(:class:`coder.errors.CoderError`) become one-line messages with exit status 1; usage mistakes
exit 2 (click's contract). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sqlite3
import sys

import click

from coder.cli import agree, analysis, core, exchange, freq, review, serve, suggest, teams, users
from coder.cli import search as search_cli
from coder.errors import CoderError

MODULES = [core, suggest, review, agree, freq, analysis, exchange, serve, search_cli, teams,
           users]


# commands in which people make decisions one at a time (each saved as it is made)
DECIDING = {"review", "serve", "reconcile"}


class CoderGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CoderError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {e}", err=True)
            sys.exit(e.exit_code)
        except sqlite3.Error as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: the study file could not be read or written: {e} "
                       "(is it a coder study, and is the disk writable?)", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            if ctx.invoked_subcommand in DECIDING:
                click.echo("Interrupted; every decision made so far is saved.", err=True)
            else:
                click.echo("Interrupted; the study holds every step that had finished, and the "
                           "one under way wrote nothing.", err=True)
            sys.exit(130)


@click.group(cls=CoderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="coder")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """coder: code qualitative interview transcripts with a machine in the loop, offline."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for _module in MODULES:
    _module.register(cli)


def main() -> None:
    cli(obj={})
