"""The async OpenAI-compatible client shared by the API backend and the judge (``client``), its
response handling (``responses``) and its resumable JSON-lines cache (``cache``)."""
