"""``make_queries``: cut LiDAR scans and tracks with known truth from a large point cloud."""
