"""cli: the command line: the flags and their checks (settings), the grid file (grid_file) and the modes
(modes; main.py is the entry point). The only layer that knows argparse; imports every layer below it."""
