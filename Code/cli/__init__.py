"""cli: the command line: the parser and checks of core/flags.py's table (settings), the grid file (grid_file) and
the modes (modes; main.py is the entry point). The only layer that knows argparse; imports every layer below it."""
