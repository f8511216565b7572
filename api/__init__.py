"""ecert api package."""
