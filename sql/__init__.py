"""The SQL files (schema, policies, analyses, checks), shipped inside the package as curate.sql."""
