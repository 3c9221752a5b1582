"""RFC test vectors as data."""
