"""The local PostgreSQL's settings (todo_project/devservices.py)."""

from todo_project import devservices


def test_the_settings_go_at_the_end_of_postgresql_conf_once(tmp_path, monkeypatch):
    conf = tmp_path / "postgresql.conf"
    conf.write_text("shared_buffers = 128MB\nmax_connections = 100\n")
    devservices.configure_postgres(tmp_path)
    devservices.configure_postgres(tmp_path)
    assert conf.read_text().splitlines() == [
        "shared_buffers = 128MB",
        "max_connections = 100",
        devservices._SETTINGS_MARK.strip(),
        "shared_buffers = '2GB'",
    ]
    # A changed setting replaces the block; what comes before it stays.
    monkeypatch.setattr(devservices, "POSTGRES_SETTINGS", {"shared_buffers": "1GB"})
    devservices.configure_postgres(tmp_path)
    assert conf.read_text().splitlines()[2:] == [
        devservices._SETTINGS_MARK.strip(),
        "shared_buffers = '1GB'",
    ]


def test_a_data_directory_not_initialised_yet_is_left_to_initdb(tmp_path):
    devservices.configure_postgres(tmp_path)
    assert list(tmp_path.iterdir()) == []
