"""Evaluation: embedding and retrieval, the classical baseline, the paper and localisation protocols, figures."""
