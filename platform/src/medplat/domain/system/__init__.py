"""The node's own state and health: dependency checks, worker heartbeats."""
