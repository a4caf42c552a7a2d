"""A Watcher strategy for tests: no compute model, one ``nop`` action naming its parameters.

Goal ``dummy`` (shipped with Watcher). The audit's parameters are validated against
:meth:`AlarmRelayTestStrategy.get_schema`, so a test can check that the bridge's templated
parameters reached Watcher: they appear in the action's ``message``.
"""

import json

from watcher.decision_engine.strategy.strategies import base


class AlarmRelayTestStrategy(base.DummyBaseStrategy):
    """Succeeds without Nova and proposes one ``nop`` action."""

    def pre_execute(self):
        # Watcher's strategies build the compute model here, which needs Nova.
        pass

    def do_execute(self, audit=None):
        params = {name: self.input_parameters.get(name)
                  for name in sorted(self.get_schema()["properties"])}
        self.solution.add_action(
            action_type="nop",
            input_parameters={"message": "alarm-relay test " + json.dumps(params,
                                                                          sort_keys=True)})

    def post_execute(self):
        pass

    @classmethod
    def get_name(cls):
        return "alarm_relay_test"

    @classmethod
    def get_display_name(cls):
        return "alarm-relay test strategy"

    @classmethod
    def get_translatable_display_name(cls):
        return "alarm-relay test strategy"

    @classmethod
    def get_schema(cls):
        return {
            "properties": {
                "host": {"type": "string", "default": "",
                         "description": "the resource the alarm is about"},
                "alarm": {"type": "string", "default": "",
                          "description": "the alarm's name"},
            },
            "additionalProperties": False,
        }
