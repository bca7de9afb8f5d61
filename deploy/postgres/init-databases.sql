-- One database per service (docker-compose's PostgreSQL): no service reads another's.
CREATE DATABASE ticket_core;
CREATE DATABASE activity_log;
CREATE DATABASE intake;
