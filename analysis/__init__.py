"""What runs after an lmms-eval run: the results view, reports, probe, submissions and leaderboard.

Nothing here is imported while lmms-eval evaluates; it reads the files a run wrote.
"""
