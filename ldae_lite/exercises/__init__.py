"""Check functions for the notebooks' exercises: each says what is wrong, not just that something is."""
