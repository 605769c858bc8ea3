"""``python -m uc_tasks.synth --out DIR``: write a synthetic replica (the code: ``uc_tasks.data.synth``)."""

from uc_tasks.data.synth import main

if __name__ == "__main__":
    main()
