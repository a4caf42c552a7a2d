"""Unit tests of daemon/publish."""
