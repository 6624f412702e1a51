def test_stderr_logger_is_silent_with_quiet_or_json(capsys):
    import argparse

    from labcore.cli import stderr_logger

    stderr_logger(argparse.Namespace(quiet=0, json=False))("progress")
    stderr_logger(argparse.Namespace(quiet=1, json=False))("hidden")
    stderr_logger(argparse.Namespace(quiet=0, json=True))("hidden")
    captured = capsys.readouterr()
    assert captured.err == "progress\n" and captured.out == ""
