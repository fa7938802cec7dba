"""`curate report`: a static HTML report of a store and a scoring run.

curate.report.report writes the page, curate.report.viewer chooses and scores what its trajectory
viewer carries; templates/ and static/ hold the page's Jinja2 template, style sheet and script.
"""
