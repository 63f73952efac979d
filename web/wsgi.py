"""gunicorn entry point: `gunicorn web.wsgi:app` (config from $APPLIANCE_CONFIG and APPLIANCE_* env)."""

from web import create_app

app = create_app()
