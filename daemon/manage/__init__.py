"""Sub-commands of alarm-relay-manage, one module each."""
