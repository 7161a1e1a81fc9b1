"""The outputs layer: callbacks that write a run's results into its run folder (test report,
validation samples, predictions, land-cover maps, Hugging Face export with its model card, throughput)
and the record of its metrics. Imports from ``data`` and ``model``, never from ``cli``."""
