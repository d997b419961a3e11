"""The HTTP server of `charrnn serve`: the app and its routes (app), the sampling
engine that runs every model's continuous batch in one worker thread (engine), and
the checks and caps of requests (schema); the web page is page.html. It uses the
library only through charrnn.api, as the CLI does."""
