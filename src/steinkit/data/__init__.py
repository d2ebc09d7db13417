"""steinkit.data."""
