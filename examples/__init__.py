"""Examples for teams that integrate with the help desk. They use only the published contract
(docs/events.md, docs/asyncapi.json), never the project's own code."""
