"""Doctors' accounts: PERSONAL data that never leaves the node."""
