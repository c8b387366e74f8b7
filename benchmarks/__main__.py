"""`python -m benchmarks`: run every benchmark, print the table, write the raw samples as JSON."""

from benchmarks.run import main

raise SystemExit(main())
