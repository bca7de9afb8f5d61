"""intake's tables: so far the outbox and inbox every message-driven service has."""

from sqlalchemy import MetaData

from shared.inbox import define_inbox_table
from shared.outbox import define_outbox_table

metadata = MetaData()
outbox = define_outbox_table(metadata)
inbox = define_inbox_table(metadata)
