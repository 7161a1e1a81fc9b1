"""The command's parser, built once per process.

Building LightningCLI's parser reads every class signature: about 0.4 s on 2 CPU cores, as long as parsing
and often longer than the rest of a short command. Commands run from Python in one process (a notebook, the
learning curve's points, the tests) build it once; each later command gets a deep copy (about 20 ms), so
nothing a command leaves on its parser reaches the next (jsonargparse keeps a ``--print_config`` request on
the parser until it prints, and a command refused while parsing never prints it). A parser is reused only
for the same classes (a class redefined in a notebook is a new one) and jsonargparse settings.
"""

import copy
from collections.abc import Callable, Hashable
from typing import Any

# per key, what setting up the parser gave the CLI object, kept as built (before any command parsed)
_SET_UP: dict[Hashable, dict[str, Any]] = {}


def set_up_once(cli: object, key: Hashable, set_up: Callable[[], None]) -> None:
    """Run ``set_up`` (which gives ``cli`` attributes: its parser, and what LightningCLI keeps beside it) the
    first time for ``key``; later, give ``cli`` deep copies of the attributes that first run gave (one
    copy of them all, so the parser and its subcommands' parsers stay one structure)."""
    if key in _SET_UP:
        vars(cli).update(copy.deepcopy(_SET_UP[key]))
        return
    before = dict(vars(cli))
    set_up()
    given = {name: value for name, value in vars(cli).items() if name not in before or before[name] is not value}
    _SET_UP[key] = copy.deepcopy(given)
