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
                  help="Address to bind. Anything but loopback requires the printed access "
                       "token in the browser.")
    @click.option("--coder", "coder_name", help="Default coder name (otherwise asked for).")
    @click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
    def serve(study, port, host, coder_name, open_browser):
        """Serve STUDY on a local web page until Ctrl-C."""
        import socket
        import webbrowser

        import uvicorn

        from coder.web.app import create_app, new_token

        local = host in LOOPBACK
        token = None if local else new_token()
        app = create_app(study, coder=coder_name, token=token, local_only=local)
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
        url = f"http://{shown}:{port}/"
        click.echo(f"Serving {study} at {url}  (Ctrl-C to stop)")
        if token:
            click.echo(f"Access token (the page asks for it): {token}")
        if open_browser:
            webbrowser.open(url)
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after a clean shutdown
            pass
        finally:
            sock.close()
        click.echo("Stopped; every decision made is saved.")
