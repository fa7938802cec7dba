"""Scripts that regenerate the tables and figures (installed as curate.figures).

One script per artefact (tables, fig3, fig4, fig_models, index), each runnable on its own;
`build.write_all` (and `curate figures`, `python -m figures`) runs them all.
"""
