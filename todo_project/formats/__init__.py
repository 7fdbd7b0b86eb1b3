"""Date formats of the admin (FORMAT_MODULE_PATH): Django's English ones, with the zone."""
