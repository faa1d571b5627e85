"""The `printroom` command as a new user meets it: every subcommand says what it does, takes --settings anywhere,
and answers a wrong argument in one line (exit 2), before connecting to anything."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from printroom.cli.main import parser
from tests.conftest import free_port, run_printroom


def commands(top: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every command a user can type, down to the leaves (`printroom drafts send`)."""
    for action in top._actions:  # noqa: SLF001  # argparse offers no public walk of its subcommands
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for command in action.choices.values():
                yield command
                yield from commands(command)


ALL = list(commands(parser()))
LEAVES = [c for c in ALL if not any(isinstance(a, argparse._SubParsersAction) for a in c._actions)]  # noqa: SLF001


def test_every_subcommand_says_what_it_does():
    assert len(LEAVES) >= 17
    for command in ALL:
        assert command.description and len(command.description) > 15, f"{command.prog} -h says nothing"
    web = next(c for c in ALL if c.prog == "printroom web").format_help()
    assert "web.port" in web and "8377" in web and "PRINTROOM_WEB__SECRET" in web and "web.secret_file" in web


# A valid value for each argument a leaf requires, by its name (a new one needs its sample here).
SAMPLE_ARGUMENTS = {"to": "marie@example.org", "out": "preview.html", "lang": "fr", "trigger": "order_accepted",
                    "template": "fr/order_accepted", "order": "PO-1", "draft": "d1", "reason": "a typo"}  # fmt: skip


def required_arguments(command: argparse.ArgumentParser) -> list[str]:
    """What a user must type after a leaf's name: its positionals and required options, each with a valid value."""
    typed: list[str] = []
    for action in command._actions:  # noqa: SLF001
        if action.option_strings and not action.required or action.nargs == "?" or action.dest == "help":
            continue
        value = action.choices[0] if action.choices else SAMPLE_ARGUMENTS[action.dest]
        typed += [action.option_strings[0], value] if action.option_strings else [value]
    return typed


@pytest.mark.parametrize("command", [c.prog.split(" ", 1)[1] for c in LEAVES])
@pytest.mark.parametrize("where", ["before", "after", "between"])
def test_settings_is_taken_in_any_position(where, command):
    """`--settings` worked only before the subcommand: every leaf takes it before, after its arguments, and after
    its first word."""
    words = command.split()
    typed = required_arguments(next(c for c in LEAVES if c.prog == f"printroom {command}"))
    argv = {
        "before": ["--settings", "x.toml", *words, *typed],
        "after": [*words, *typed, "--settings", "x.toml"],
        "between": [words[0], "--settings", "x.toml", *words[1:], *typed],
    }[where]
    assert parser().parse_args(argv).settings == "x.toml", argv
    assert parser().parse_args([*words, *typed]).settings is None


@pytest.mark.parametrize("command", [c.prog.split(" ", 1)[1] for c in LEAVES])
def test_every_subcommand_answers_a_wrong_argument_in_one_line_with_exit_2(command, capsys):
    with pytest.raises(SystemExit) as ended:
        parser().parse_args([*command.split(), "--no-such-option"])
    err = capsys.readouterr().err
    assert ended.value.code == 2
    assert err.startswith(f"printroom {command}: ") and err.count("\n") == 1, err
    assert "unrecognized arguments: --no-such-option" in err or "the following arguments are required" in err, err


BAD_VALUES = {
    "smtp send-test --to not-an-address": "argument --to: 'not-an-address' is not an email address",
    "drafts send PO-1 d1 --cc not-an-address": "argument --cc: 'not-an-address' is not an email address",
    "drafts show PO-1 --out d1.pdf": "argument --out: 'd1.pdf': must end in .html (for a browser) or .eml",
    "templates preview order_accepted --lang fr --out x.pdf": "argument --out: 'x.pdf': must end in .html",
    "diagram nope": "argument machine: invalid choice: 'nope'",
    "templates customize nope --lang fr": "no template 'nope'",
    "templates preview order_accepted --lang fr --out x.html --order missing.json": "cannot read the order missing.json",
    "drafts": "the following arguments are required: action",
    "templates preview order_accepted --lang fr --out no-such-folder/x.html": "the folder no-such-folder does not exist",
    "settings check --settings .": "settings file . cannot be read (Is a directory)",
}


@pytest.mark.parametrize("command", list(BAD_VALUES))
def test_wrong_values_are_said_in_one_line_before_anything_connects(command, tmp_path: Path):
    """Temporal is unreachable here: a wrong argument must be said first, not 'cannot reach Temporal'."""
    run = run_printroom(*command.split(), cwd=tmp_path, PRINTROOM_TEMPORAL__ADDRESS=f"127.0.0.1:{free_port()}")
    assert (run.returncode, run.stdout) == (2, ""), run
    assert run.stderr.count("\n") == 1 and BAD_VALUES[command] in run.stderr, run.stderr


def test_temporal_out_of_reach_is_said_in_words_naming_the_address(tmp_path: Path):
    port = free_port()
    run = run_printroom("drafts", "list", cwd=tmp_path, PRINTROOM_TEMPORAL__ADDRESS=f"127.0.0.1:{port}")
    assert run.returncode == 1
    assert run.stderr == (
        f"printroom drafts list: cannot reach Temporal at 127.0.0.1:{port} (connection refused): is `make run` "
        "running, or is `temporal.address` right?\n"
    )


def test_a_file_that_cannot_be_written_is_named_without_a_traceback(tmp_path: Path):
    (tmp_path / "taken.html").mkdir()  # --out names a folder
    run = run_printroom("templates", "preview", "order_accepted", "--lang", "fr", "--out", "taken.html", cwd=tmp_path)
    assert run.returncode == 1 and run.stderr == "printroom templates preview: taken.html: Is a directory\n", run.stderr
    (tmp_path / "not-utf8.toml").write_bytes(b"\xff\xfe[smtp]")
    run = run_printroom("settings", "check", "--settings", "not-utf8.toml", cwd=tmp_path)
    assert (run.returncode, run.stderr) == (2, "printroom: settings file not-utf8.toml is not UTF-8 text (TOML files are)\n")


@pytest.mark.parametrize("core, reason", [
    ('Failed client connect: Server connection error: tonic::transport::Error(Transport, ConnectError(ConnectError("tcp connect error", 127.0.0.1:1, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })))', "connection refused"),
    ('Failed client connect: Server connection error: tonic::transport::Error(Transport, ConnectError(ConnectError("dns error", Custom { kind: Uncategorized, error: "failed to lookup address information: Name or service not known" })))', "the host name is not found"),
    ('Failed client connect: `get_system_info` call error after connection: Status { code: Unimplemented, message: "grpc-status header missing, mapped from HTTP status code 404" }', "what answers there is not Temporal's gRPC"),
])  # fmt: skip
def test_the_cores_connection_errors_are_said_in_words(core, reason):
    """The texts temporalio 1.35's core gives (seen here) for a closed port, an unknown host and a web server."""
    from printroom.worker.reach import unreachable

    said = str(unreachable("mail.example:7233", RuntimeError(core)))
    assert said == f"cannot reach Temporal at mail.example:7233 ({reason}): is `make run` running, or is `temporal.address` right?"
    assert "tonic" not in said
