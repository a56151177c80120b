"""`python -m coder ...`: the same as the `coder` command."""

from coder.cli import main

if __name__ == "__main__":
    main()
