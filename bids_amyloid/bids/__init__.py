"""BIDS input discovery, label tables, derivative names and safe file writing."""
