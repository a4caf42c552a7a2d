"""``alarm-relay-manage mapping``: placeholder until its issue lands (replace this file)."""


def add_parser(subparsers) -> None:
    subparsers.add_parser("mapping", help="(not yet available)")
