"""NLL tertile analyses over a store (installed as curate.analysis)."""
