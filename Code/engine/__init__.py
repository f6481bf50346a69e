"""engine: training and re-testing, below the command line: the protocol (folds, labels, epoch choice), a new
run's settings (run_config), cross-validation of run folders, stacked training, augmentation, the one fold-weights
loader (fold_weights) and re-tests. With Common_Model.py (the trainer and one fold) at the top of the package.
Imports core, data, nn, the models and runs."""
