"""Layer 1, spaces: architectures and their strings (genome), the MBConv space and its presets (mbconv), the
NAS-Bench-201 cell space (nb201), the protocol every space implements (protocol), op keys (ops), analytic costs
and precisions (cost, precision), network morphisms (morphisms). No torch, no devices.
"""
