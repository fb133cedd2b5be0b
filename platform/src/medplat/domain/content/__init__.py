"""Shared content: articles, courses, events and product notes that may travel between nodes."""
