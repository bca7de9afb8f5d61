from services.ticket_core.store.tables import metadata
from shared.migrations import run_migrations

run_migrations(metadata)
