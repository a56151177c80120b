"""The CLI reference in docs/cli.md is generated from the commands' own --help, so it cannot go
stale: `python -m coder.cli.reference > docs/cli.md`, and a test fails when they differ."""

from __future__ import annotations

import click


def _walk(command: click.Command, name: str, ctx: click.Context | None):
    # the same help option names as `coder` itself: click caches the help option per command
    sub = click.Context(command, info_name=name, parent=ctx, terminal_width=80,
                        max_content_width=80, help_option_names=["-h", "--help"])
    yield name, sub
    if isinstance(command, click.Group):
        for child_name in sorted(command.list_commands(sub)):
            yield from _walk(command.get_command(sub, child_name), child_name, sub)


def render() -> str:
    from coder.cli import cli

    out = ["# CLI reference", "",
           "Generated from `coder --help` by `python -m coder.cli.reference > docs/cli.md`; "
           "`tests/test_docs.py` fails when this file is out of date.", ""]
    for _, ctx in _walk(cli, "coder", None):
        out += [f"## `{ctx.command_path}`", "", "```", ctx.get_help(), "```", ""]
    return "\n".join(out)


def command_paths() -> list[str]:
    from coder.cli import cli

    return [ctx.command_path for _, ctx in _walk(cli, "coder", None)]


if __name__ == "__main__":
    click.echo(render(), nl=False)
