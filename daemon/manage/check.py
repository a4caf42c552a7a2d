"""``alarm-relay-manage check``: placeholder until its issue lands (replace this file)."""


def add_parser(subparsers) -> None:
    subparsers.add_parser("check", help="(not yet available)")
