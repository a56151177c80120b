"""`coder serve`: the study in the browser (review, transcripts, codebook, analysis)."""

from __future__ import annotations

import click

from coder.cli.options import study_argument

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @study_argument
    @click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
                  help="Port to listen on (0: any free port).")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to bind. Anything but loopback serves a team: the study must "
                       "have users (coder users add), and each signs in.")
    @click.option("--coder", "coder_name",
                  help="Default coder name (otherwise asked for); not with users, who sign in.")
    @click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
                  help="Serve HTTPS with this certificate (PEM); needs --tls-key.")
    @click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
                  help="The certificate's private key (PEM).")
    @click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
    def serve(study, port, host, coder_name, tls_cert, tls_key, open_browser):
        """Serve STUDY on a web page until Ctrl-C.

        \b
        One researcher, this machine:  coder serve study.db
        A team on the local network:   coder users add study.db alice   (once per coder)
                                       coder serve study.db --host 192.168.1.20 \\
                                           --tls-cert cert.pem --tls-key key.pem
        With users, every visitor signs in and each decision is the signed-in coder's."""
        import socket
        import webbrowser

        import uvicorn

        from coder.store import users
        from coder.study import Study
        from coder.web.app import create_app

        if bool(tls_cert) != bool(tls_key):
            raise click.UsageError("--tls-cert and --tls-key go together")
        local = host in LOOPBACK
        with Study(study) as s:
            team = users.list_users(s)
        if not local and not team:
            raise click.UsageError(
                f"serving on {host} lets other machines reach the study, so each coder must "
                f"sign in: add them first with `coder users add {study} NAME [--role lead]`")
        if team and coder_name:
            raise click.UsageError("--coder is for a study without users; with users each "
                                   "coder signs in")
        app = create_app(study, coder=coder_name, local_only=local, tls=bool(tls_cert))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
        except OSError as e:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({e.strerror}); try another --port") from None
        port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"{'https' if tls_cert else 'http'}://{shown}:{port}/"
        click.echo(f"Serving {study} at {url}  (Ctrl-C to stop)")
        if team:
            leads = sum(u.role == "lead" for u in team)
            click.echo(f"Sign-in required: {len(team)} user(s), {leads} lead(s) "
                       "(coder users list).")
            if not tls_cert and not local:
                click.echo("Warning: without --tls-cert/--tls-key, passwords and decisions "
                           "cross the network unencrypted.")
        if open_browser:
            webbrowser.open(url)
        # Ctrl-C waits for requests under way (each decision is written before it is
        # answered), but not forever for a browser that keeps a connection open
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                                timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after a clean shutdown
            pass
        finally:
            sock.close()
        click.echo("Stopped; every decision made is saved.")
