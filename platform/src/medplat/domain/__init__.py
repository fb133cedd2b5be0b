"""The node's domains, each with its models, services, schemas and controllers."""
