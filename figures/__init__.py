"""Scripts that regenerate the tables and figures (installed as curate.figures)."""
