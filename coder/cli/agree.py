"""CLI commands: placeholder until this group lands."""


def register(cli):
    pass
