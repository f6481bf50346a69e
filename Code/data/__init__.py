"""data: audio and features, no model: corpora and their labels (corpora), audio reading (audio), MFCC and log-Mel
features (features), corpus file listing (corpus_files), the extraction pool (extraction), safe feature files
(feature_files), the one corpus/feature-path resolver (resolve), the synthetic corpus and the downloads. Imports
core only."""
