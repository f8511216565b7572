"""ecert bench package."""
