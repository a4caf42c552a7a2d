"""``alarm-relay-manage listen``: placeholder until its issue lands (replace this file)."""


def add_parser(subparsers) -> None:
    subparsers.add_parser("listen", help="(not yet available)")
