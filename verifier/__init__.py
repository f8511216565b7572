"""ecert verifier package."""
