"""steinkit: learned Stein discrepancies for unnormalized models."""
