"""Settings variants the benchmark measured (`python -m bench.run --settings MODULE`).

Each imports the real settings and changes one thing, so a run can compare that one choice
against the default without touching todo_project/settings.py.
"""
