"""Model: dual encoders, contrastive losses, optimisers, the pair sampler, the trainer and DDP helpers."""
