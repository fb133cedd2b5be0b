"""The local federation: real PostgreSQL, SeaweedFS and Redis engines from pip wheels, one set per region."""
