"""The fund's decisions, in: a source connector from the decisions topic to the benefits
service (`connectors.fund_decisions.recorder`)."""
