"""The doctors' feed: shared content visible on this node, for a doctor's specializations and language."""
