"""Functional tests of daemon/publish against a real RabbitMQ."""
