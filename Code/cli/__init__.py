"""cli: the command line: the parser and checks of core/flags.py's table (command_line), the grid file (grid_file),
the modes (modes; what they read first: mode_inputs; main.py is the entry point) and the training API
(training_api). The only layer that knows argparse; imports every layer below it."""
