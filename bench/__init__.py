"""Benchmarks for `make bench`: each figure beside a baseline measured in the same run.

`python -m bench` prints a table and writes bench/results.json. It asserts nothing
and is not part of `make test`. See bench/README.md for how to read the figures.
"""
