"""Localisation of LiDAR point clouds on an orthophoto map: rasterising, map index, voting, refinement."""
