"""Example data for the quickstart. Nothing in the pipeline knows about it: it only writes files."""
