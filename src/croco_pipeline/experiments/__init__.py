"""Experiments: ablation configurations, their hashing and reporting, the shared experiment entry point."""
