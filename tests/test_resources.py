from edgenas.resources import shipped_dir


def test_shipped_folders_resolve():
    for kind in ("latency_tables", "devices"):
        folder = shipped_dir(kind)
        assert folder.is_dir() and (folder / "README.md").is_file()
