"""fau-pipeline: facial action unit intensity estimation with semantic
correspondence convolutions (Fan, Lam & Li, AAAI 2020)."""

__version__ = "0.1.0"
