"""Protocol tests: real daphne processes, Redis and PostgreSQL."""
