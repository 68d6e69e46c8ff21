"""What people read: run history, ``why``, the school's report, progress, alerts and monitoring.

These modules read the state databases and the run results; they do not run anything. ``cli.py`` parses
the arguments and prints what they return.
"""
