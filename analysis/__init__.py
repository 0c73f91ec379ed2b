"""analysis: polars + matplotlib over the results store. Never imports torch or ray.

It reads sweeps/schema.py for column names and adv_core.theory / adv_core.stats (numpy and the
standard library only) so that plotted closed forms are the very ones the cells computed.
"""

from analysis.load import load, load_examples

__all__ = ["load", "load_examples"]
