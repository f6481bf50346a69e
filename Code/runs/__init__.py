"""runs: what a run leaves on disk and how it is read back: the run folder and run.json (run_folder; which process
trains which fold: fold_locks), per-fold
metrics and the results files (results), the cross-run report (report; which records make a row: report_rows)
and its statistics (significance).
Imports core, data and nn; never trains."""
