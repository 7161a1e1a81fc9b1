"""Training patches: EuroSAT (or one's own folder of ``<class>/<image>``) found or downloaded, decoded once,
split, described and served."""
