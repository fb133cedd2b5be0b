"""Anonymised clinical cases: PERSONAL health data of this node, moderated, never in a manifest."""
