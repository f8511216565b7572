"""ecert ofd package."""
