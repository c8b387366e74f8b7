"""`vmafx report`: one self-contained HTML page of what vmafx measured.

Inputs are the files vmafx writes: results (`run -o` / `--json`), per-frame files (`run --frames`,
CSV or JSON), ladder results (`"schema": "vmafx.ladder"`) and batch results (JSON Lines). A result
holds only pooled values, so per-frame charts need the `--frames` file: it is given right after
its result on the command line (`vmafx report a.json a.csv b.json b.csv`), or the result comes
from `vmafx run --report`, which has the frames in hand.

`inputs` reads and checks the files and needs nothing but the standard library; the charts
(`render`, `chart`) and the BD metrics (`analysis.bd_metrics`) need the `report` extra (plotly,
matplotlib, bjontegaard), imported only when a report is made.
"""
