"""The benchmark's data: sources and schema checks (``sources``), the 75 concepts (``taxonomy``), the
authors' fine-tuning split (``splits``), perception options (``options``), context questions
(``context``), the synthetic replica (``synth``) and the one table of task kinds (``tasks``)."""

from uc_tasks.data.sources import DataError, DataSource, LoadReport, load_rows, resolve_source

__all__ = ["DataError", "DataSource", "LoadReport", "load_rows", "resolve_source"]
