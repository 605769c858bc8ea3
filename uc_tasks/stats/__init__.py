"""Statistics of the results files, each a leaf that takes what it computes as an argument:
the clustered bootstrap (``bootstrap``), paired tests of the modality gap (``paired``), prompt
sensitivity (``sensitivity``), answer diversity as 1 - Self-BLEU (``diversity``) and the perception x
alignment table (``perception_alignment``). ``uc_tasks.summary`` composes them with the metrics."""
