"""The command line's entry point: ``cd Code && python main.py --mode ...`` (the original's way) and the installed
``timnet-ser``. The flags are cli/command_line.py's, the modes cli/modes.py's; this file only starts them."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # `cd Code && python main.py`: this folder is the package timnet_ser; load it under that name and run its main
    import importlib.util
    _folder = os.path.dirname(os.path.abspath(__file__))
    _spec = importlib.util.spec_from_file_location("timnet_ser", os.path.join(_folder, "__init__.py"),
                                                   submodule_search_locations=[_folder])
    sys.modules["timnet_ser"] = importlib.util.module_from_spec(_spec)
    try:
        _spec.loader.exec_module(sys.modules["timnet_ser"])
        from timnet_ser.main import process_main as _process_main
        _status = _process_main()
    except ModuleNotFoundError as _missing:  # a python outside the project's .venv: one line saying which to use
        _venv = os.path.join(os.path.dirname(_folder), ".venv", "bin", "python")
        print(f"error: {sys.executable} has no module {_missing.name!r}: run this with the project's environment "
              f"({_venv}, or `source .venv/bin/activate` after `bash setup.sh`)", file=sys.stderr)
        _status = 2
    sys.exit(_status)

from .cli.modes import main, process_main

__all__ = ["main", "process_main"]

if __name__ == "__main__":
    sys.exit(process_main())
