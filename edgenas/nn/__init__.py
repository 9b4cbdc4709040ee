"""Layer 2, networks: torch models built from genomes (model), weight inheritance (inherit), datasets (data,
photos) and training (train).
"""
