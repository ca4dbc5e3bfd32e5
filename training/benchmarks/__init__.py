"""Labelled benchmarks that ship with the code (data files next to their loaders). Pure: no Django."""
