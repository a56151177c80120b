"""The browser face of coder (`coder serve`): review, transcripts, codebook and analysis pages
over the same library code as the CLI."""

from coder.web.app import create_app

__all__ = ["create_app"]
