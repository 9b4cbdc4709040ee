"""Installed copies of the shipped latency_tables/ and devices/ folders (see edgenas.resources)."""
