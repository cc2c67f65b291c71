"""bids_amyloid: amyloid-beta positivity from MRI alone (a BIDS-App)."""
__version__ = "0.1.0"
