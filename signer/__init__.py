"""ecert signer package."""
