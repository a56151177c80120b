"""`python -m coder ...`: the same as the `coder` command."""

from .cli import main

if __name__ == "__main__":
    main()
