"""Tools for developing and testing edgenas itself (an emulated arm64 device)."""
