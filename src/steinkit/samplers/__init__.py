"""steinkit.samplers."""
