"""CLI for teams that code apart: ``coder split`` (a copy for one coder) and ``coder merge``
(the copies back into the study). The work is :mod:`coder.exchange.merge`."""

from __future__ import annotations

import click


def register(cli):
    @cli.command("merge")
    @click.argument("study", type=click.Path(dir_okay=False))
    @click.argument("copies", nargs=-1, required=True, type=click.Path(dir_okay=False))
    @click.option("--dry-run", is_flag=True,
                  help="Print the whole plan (what would be added, matched, replaced, and every "
                       "conflict) and write nothing.")
    @click.option("--prefer", metavar="newest|study|FILE",
                  help="Settle conflicts: the newest side, the study's side, or that file's "
                       "side (else the study's).")
    @click.option("--add-codes", is_flag=True,
                  help="Add to the study's codebook the codes only a copy has.")
    def merge_cmd(study, copies, dry_run, prefer, add_codes):
        """Merge copies coded apart (made with `coder split`) into STUDY, all or nothing.

        Documents are matched by their text, segments by offsets, codes by id then path; every
        coder's decisions come with their history. A conflict (a decision changed in two
        places, a code only a copy has, an edited transcript, a code edited in a copy, a
        participant's attribute or speaker) refuses the merge unless --prefer or --add-codes settles it.
        If STUDY does not exist it starts as a copy of the first COPY. The decisions brought in
        are one batch: coder undo STUDY --batch N takes them back."""
        from coder.exchange.merge import merge

        plan = merge(study, list(copies), dry_run=dry_run, prefer=prefer, add_codes=add_codes)
        if dry_run:
            click.echo("\n".join(plan.lines()))
            return
        counts: dict[str, int] = {}
        for c in plan.decisions.values():
            for what, n in c.items():
                counts[what] = counts.get(what, 0) + n
        settled = len(plan.conflicts)
        click.echo(f"Merged {len(plan.decisions)} cop{'y' if len(plan.decisions) == 1 else 'ies'}"
                   f" into {study}: {counts.get('new', 0)} new decision(s), "
                   f"{counts.get('replaced', 0)} replaced, {counts.get('removed', 0)} removed, "
                   f"{counts.get('same', 0)} already there"
                   + (f"; {settled} conflict(s) settled" if settled else "")
                   + (f"; {len(plan.dropped)} dropped (see --dry-run)" if plan.dropped else "")
                   + (f" (batch {plan.batch}; undo with: coder undo {study} --batch "
                      f"{plan.batch})" if plan.batch else "; no decision changed") + ".")

    @cli.command("split")
    @click.argument("study", type=click.Path(dir_okay=False))
    @click.option("--coder", required=True, help="The coder the copy is for.")
    @click.argument("out", type=click.Path(dir_okay=False))
    @click.option("--blind", is_flag=True,
                  help="Remove the other coders' decisions, history, memos and the models "
                       "trained on them, so the copy can be coded independently.")
    def split_cmd(study, coder, out, blind):
        """Write a copy of STUDY to OUT for one coder to take away (refuses an existing OUT)."""
        from coder.exchange.merge import split

        click.echo(split(study, coder, out, blind=blind).summary())
