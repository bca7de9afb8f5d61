"""The dashboard API's routes, one module per resource: each is a table of `Forward` entries
(services/gateway/forwarding.py) and, where an entry cannot say it, a short route by hand."""
