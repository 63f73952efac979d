from gunicorn.config import Config

from web.access_log import ACCESS_LOG_FORMAT, RedactingLogger, redact_path


def test_invitation_tokens_never_reach_the_access_log():
    assert redact_path("/invite/abc123SECRET") == "/invite/<redacted>"
    assert redact_path("/invite/abc123SECRET/extra") == "/invite/<redacted>/extra"
    assert redact_path("/recordings/0a1b") == "/recordings/0a1b"


def test_logger_class_redacts_the_path_atom():
    cfg = Config()
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    logger = RedactingLogger(cfg)

    class Resp:
        status = "200 OK"
        headers = []
        sent = 10
        response_length = 10

    class Req:
        headers = []
        method = "GET"
        path = "/invite/TOKEN"
        query = "x=1"
        uri = "/invite/TOKEN?x=1"
        version = (1, 1)

    import datetime as dt

    environ = {"REMOTE_ADDR": "127.0.0.1", "RAW_URI": "/invite/TOKEN?x=1", "PATH_INFO": "/invite/TOKEN",
               "QUERY_STRING": "x=1", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET"}
    atoms = logger.atoms(Resp(), Req(), environ, dt.timedelta(seconds=0.01))
    line = ACCESS_LOG_FORMAT % atoms
    assert "TOKEN" not in line and "/invite/<redacted>" in line
