"""lmms-eval model backends of this package, registered through the ``lmms_eval.models`` entry point."""
