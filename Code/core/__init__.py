"""core: what every layer shares and nothing else: the one error type (errors), atomic files (atomic_file), the
package folder and default folders (paths), the table of every flag (flags), a command's frozen Settings
(settings), the typed run settings (config) and TensorFlow's start-up (tensorflow_setup, the only module here that
imports TensorFlow, and only when called). Imports nothing of the package."""
