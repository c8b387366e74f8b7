"""The builtin libvmaf scorer's room: the scorer (`scorer`), its models (`models`), its extra
features (`features`) and its `vmafx models` command (`command`). The names other code used from
`vmafx_core.scorers.libvmaf` before it became a package are here."""

from vmafx_core.scorers.libvmaf.scorer import (
    SCORER,
    LibvmafOptions,
    NotGroupable,
    build_filter_graph,
    cache_facts,
    score,
    score_group,
    scoring_groups,
)

__all__ = ["SCORER", "LibvmafOptions", "NotGroupable", "build_filter_graph", "cache_facts", "score", "score_group",
           "scoring_groups"]
