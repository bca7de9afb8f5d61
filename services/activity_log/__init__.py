"""activity-log: every ticket's whole history, one immutable entry per event.

domain/       what an entry is, made from an event (pure Python)
handlers.py   record an event (de-duplicated by event id); read a ticket's history
store/        tables, repository, unit of work, migrations
entrypoints/  Kafka consumer of ticket.events.v1 (FastStream), internal HTTP API, process main
"""
