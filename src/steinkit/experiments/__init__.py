"""steinkit.experiments."""
