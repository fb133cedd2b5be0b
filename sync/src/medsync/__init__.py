"""MedFed sync service: moves shared content between regional nodes as signed manifests."""
