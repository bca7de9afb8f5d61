"""What every service shares: the Kafka contract and the infrastructure used the same way.

`shared.contracts` is the public contract (topics, envelope, event and command models).
The other modules are plumbing every service uses identically: settings, database engine,
migrations, transactional outbox and its relay, inbox de-duplication, broker setup with
dead-lettering, JSON logging, JWT tokens and problem+json errors.

No domain rule of any service lives here, and nothing here imports a service.
"""
