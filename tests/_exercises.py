"""What the tests of the exercise checks share: running a check and reading what it printed."""


def run(check, fn, capsys):
    """(check's verdict on fn, what the check printed)."""
    ok = check(fn)
    return ok, capsys.readouterr().out


def unsolved(*args):
    """An answer cell left as handed out."""
    raise NotImplementedError


def accepts(check, answer, capsys):
    """The check passes ``answer`` and says so."""
    ok, out = run(check, answer, capsys)
    assert ok and out.startswith("correct"), out


def rejects(check, slip, message, capsys):
    """The check fails ``slip`` and names what is wrong: ``message`` is part of what it prints."""
    ok, out = run(check, slip, capsys)
    assert not ok and out.startswith("not quite") and message in out, out


def waits_for_an_answer(check, capsys) -> str:
    """The check fails the answer cell as handed out (it raises NotImplementedError) without raising, and says
    so. Returns what it printed."""
    ok, out = run(check, unsolved, capsys)
    assert not ok and out.startswith("not solved yet"), out
    return out
