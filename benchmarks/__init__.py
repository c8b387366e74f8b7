"""vmafx benchmarks: the cost of streaming from object storage, measured side by side.

Not part of the test suite (pytest never collects this folder). Run from the repository root:

    .venv/bin/python -m benchmarks            # the full table, under 10 minutes on 2 cores
    .venv/bin/python -m benchmarks --quick    # a smoke run of every item, about a minute

See docs/PERFORMANCE.md for what each row means.
"""
