"""Tools every layer may use: downloads, a file made once under a lock, progress, per-batch seeds."""
