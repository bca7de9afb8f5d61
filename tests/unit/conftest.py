"""Unit tests: the domains and pure helpers only. Nothing here touches a database, a broker,
a socket or a file; they run in milliseconds."""
