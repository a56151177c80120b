"""CLI: ``coder users``: who may sign in to a served study, and as what (`coder.store.users`)."""

from __future__ import annotations

import click

from coder.cli.options import study_argument


def _study(path):
    from coder.study import Study

    return Study(path)


def register(cli: click.Group) -> None:
    @cli.group("users")
    def users_group():
        """Coders who sign in to `coder serve` (each decision is then theirs alone).

        Once a study has users, its served page asks everyone to sign in, on any address; a
        study without users is served to one person on this machine only, as before.
        Roles: coder (decides as themselves) and lead (also reconciles coders and decides
        whether coders may see each other's decisions). The CLI is not gated: whoever has the
        study file can run every command."""

    @users_group.command("add")
    @study_argument
    @click.argument("name")
    @click.option("--role", type=click.Choice(["coder", "lead"]), default="coder",
                  show_default=True, help="lead: may also reconcile and set what coders see.")
    @click.option("--url", default="http://127.0.0.1:8765/",
                  help="The address the page is served at, for the printed sign-in link.")
    def add(study, name, role, url):
        """Let NAME sign in; prints a one-time password, to be replaced at first sign-in."""
        from urllib.parse import quote

        from coder.store import users

        user, password = users.add_user(_study(study), name, role=role)
        click.echo(f"Added {user.name} ({user.role}). Hand them, privately:")
        click.echo(f"  sign in at {url.rstrip('/')}/signin?name={quote(user.name)}")
        click.echo(f"  one-time password: {password}")
        click.echo("The page asks them to choose their own password at first sign-in.")

    @users_group.command("list")
    @study_argument
    def list_cmd(study):
        """Who can sign in, their role, and whether they still have the one-time password."""
        from coder.store import users

        s = _study(study)
        rows = users.list_users(s)
        if not rows:
            click.echo("No users: the page is served without sign-in, on this machine only.")
            return
        click.echo(f"{'name':<20} {'role':<6} {'password':<10} {'sessions':>8}  last sign-in")
        for u in rows:
            click.echo(f"{u.name:<20} {u.role:<6} {'one-time' if u.one_time else 'own':<10} "
                       f"{u.sessions:>8}  {u.last_signin_at or 'never'}")
        shown = "may" if users.others_visible(s.db) else "may not"
        click.echo(f"Coders {shown} see each other's decisions (coder users others STUDY "
                   "on|off); leads always do.")

    @users_group.command("remove")
    @study_argument
    @click.argument("name")
    def remove(study, name):
        """Stop NAME signing in; their sessions end now, their decisions stay."""
        from coder.store import users

        user = users.remove_user(_study(study), name)
        click.echo(f"Removed {user.name}: they can no longer sign in; every decision they made "
                   "stays in the study.")

    @users_group.command("reset")
    @study_argument
    @click.argument("name")
    def reset(study, name):
        """A new one-time password for NAME (a forgotten password); their sessions end."""
        from coder.store import users

        password = users.reset_password(_study(study), name)
        click.echo(f"New one-time password for {name}: {password}")

    @users_group.command("role")
    @study_argument
    @click.argument("name")
    @click.argument("role", type=click.Choice(["coder", "lead"]))
    def role_cmd(study, name, role):
        """Make NAME a coder or a lead."""
        from coder.store import users

        user = users.set_role(_study(study), name, role)
        click.echo(f"{user.name} is now a {user.role}.")

    @users_group.command("others")
    @study_argument
    @click.argument("setting", type=click.Choice(["on", "off"]))
    def others(study, setting):
        """Whether signed-in coders may see each other's decisions (default off: each codes
        independently; the lead decides, here or on the page's Team view)."""
        from coder.store import users

        users.set_others_visible(_study(study), setting == "on")
        click.echo("Coders may now see each other's decisions." if setting == "on" else
                   "Coders now see only their own decisions (leads see everyone's).")
