"""coder: offline, NLP-assisted coding of qualitative interview transcripts."""

__version__ = "0.1.0"

from coder.study import Study  # noqa: E402

__all__ = ["Study", "__version__"]
