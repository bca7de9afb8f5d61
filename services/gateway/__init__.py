"""gateway: the dashboard's only door. It owns no data and decides no ticket rule.

auth.py         who is calling: the bearer token, checked against ticket-core's membership
upstream.py     internal HTTP calls to the services; their problems pass through unchanged
entrypoints/    the public dashboard API (FastAPI) and the process main
"""
