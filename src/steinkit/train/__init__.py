"""steinkit.train."""
