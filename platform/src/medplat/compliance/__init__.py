"""Compliance: the data map, the residency scanner, the transfer register, signed residency reports and data-subject
request deadlines. Everything here reads the node's own stores; only signed counts ever leave the node."""
