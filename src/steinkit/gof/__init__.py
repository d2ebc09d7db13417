"""steinkit.gof."""
