"""HTTP plumbing shared by every domain: problem details, request ids and access logs."""
