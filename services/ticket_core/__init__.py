"""ticket-core: the only writer of tickets, members and workspaces.

Read it top to bottom:
  domain/       the rules (pure Python, no I/O): tickets, members, permissions
  handlers.py   one function per command: load, let the domain decide, save
  store/        SQL tables, repositories, unit of work (state + outbox in one commit), migrations
  entrypoints/  internal HTTP API (FastAPI), Kafka consumers (FastStream), process main, CLI
"""
