"""The API area by area. Each module builds its calls once and offers them twice: to
async code (``ItineraClient.<area>``) and to sync code (``SyncItineraClient.<area>``)."""
