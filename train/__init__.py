"""Segment-weighted LoRA training (installed as curate.train)."""
