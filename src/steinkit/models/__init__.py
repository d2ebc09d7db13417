"""steinkit.models."""
