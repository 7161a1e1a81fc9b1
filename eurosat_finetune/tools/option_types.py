"""Number types of options that jsonargparse checks when a command line or config is parsed, beside its own
(``PositiveInt``, ``OpenUnitInterval`` ...). Defined once: jsonargparse refuses two types of the same
restrictions under different names."""

from jsonargparse.typing import restricted_number_type

UpToOne = restricted_number_type("UpToOne", float, [(">", 0), ("<=", 1)])
"""A number in (0, 1]: a fraction that may be all (a training subset), a factor that may be 1 (layer decay)."""
