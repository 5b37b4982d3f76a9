"""Benchmarks and evaluation harnesses (`make bench`, `make eval`)."""
