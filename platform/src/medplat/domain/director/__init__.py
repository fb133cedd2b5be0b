"""The regional director's aggregated statistics of this node (counts only, no personal records)."""
