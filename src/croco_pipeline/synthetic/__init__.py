"""Synthetic DFC2018-shaped releases: a planned suburb rendered as LiDAR products and aerial photos.

See docs/synthetic.md for what is modelled and what is not.
"""

from croco_pipeline.synthetic.config import SyntheticConfig
from croco_pipeline.synthetic.release import (
    MARKER,
    ensure_synthetic_release,
    release_matches,
    write_synthetic_release,
)

__all__ = [
    "MARKER",
    "SyntheticConfig",
    "ensure_synthetic_release",
    "release_matches",
    "write_synthetic_release",
]
