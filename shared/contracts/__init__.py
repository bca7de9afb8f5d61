"""The public Kafka contract: topic names, the event envelope, event and command payloads."""
