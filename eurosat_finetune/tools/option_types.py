"""Number types of options that jsonargparse checks when a command line or config is parsed, beside its own
(``PositiveInt``, ``OpenUnitInterval`` ...). Defined once: jsonargparse refuses two types of the same
restrictions under different names."""

from jsonargparse.typing import restricted_number_type

BelowOne = restricted_number_type("BelowOne", float, [(">=", 0), ("<", 1)])
"""A number in [0, 1): a share that may be none but not all (a split's fraction, label smoothing)."""

UpToOne = restricted_number_type("UpToOne", float, [(">", 0), ("<=", 1)])
"""A number in (0, 1]: a fraction that may be all (a training subset), a factor that may be 1 (layer decay)."""
