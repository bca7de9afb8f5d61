"""The four services. None imports another: they meet only through `shared` contracts,
Kafka topics and internal HTTP."""
