"""grid: many runs, every fold a unit of work: the plan (plan: run folders found or made, folds left) and the
pool of workers on Ray or in this process (pool). The grid file that makes its points is cli/grid_file.py's.
Imports the engine and everything below it."""
