"""croco-pipeline: cross-modal localisation of elevation patches in aerial RGB maps (CroCo)."""

__version__ = "0.1.0"
