"""The argparse machinery every `maximus-train` command shares.

* `CommandParser`: errors are one line naming the flag and the rule, with a close match for a
  mistyped flag, command or choice ("did you mean --source?"), exit code 2; help shows each
  flag's real default.
* `Commands`: subcommands whose flags are added on first use (`add_lazy`), so that
  `maximus-train collect` does not import torch and Optuna to describe `train` and `tune`;
  every subcommand accepts the global flags (`-v`, `-q`) after its name too.
* `typed_flags(args)`: the long flags the user typed, by destination, so that an error about
  a value can name the flag it came from (`training.cli.options.name_flags`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from itertools import takewhile
from typing import Any, NoReturn

from training.errors import did_you_mean as did_you_mean  # the one "did you mean" (re-exported)

Build = Callable[[argparse.ArgumentParser], None]
TYPED = "typed_flags"  # the parsed namespace's {dest: the long flag as typed}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; each flag's help ends with its default unless it names one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or action.required or default in (None, False, argparse.SUPPRESS)
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser with one-line errors (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", Commands)
        self.build_later: Build | None = None

    def error(self, message: str) -> NoReturn:
        unknown = self._unknown_flags()
        if unknown and message.startswith("the following arguments are required"):
            message = self._unrecognized(unknown)  # `--sorce x`: the typo, not the consequence
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        # A subcommand's parser reports its own unknown flags, so the error names the command
        # and suggests among its flags (argparse would hand them to the top-level parser).
        self._given = list(sys.argv[1:] if args is None else args)
        if self._has_commands():
            unknown = self._unknown_flags()  # before the command, which would take the blame
            if unknown:
                self.error(self._unrecognized(unknown))
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        # A subcommand's parser ran first and put its own there.
        setattr(namespace, TYPED, {**self._typed_flags(), **getattr(namespace, TYPED, {})})
        return namespace, extras

    def _typed_flags(self) -> dict[str, str]:
        """{dest: flag} of the long flags given to this parser; an abbreviation (--epoch)
        as the flag it stands for (--epochs)."""
        given = getattr(self, "_given", [])
        given = given[:given.index("--")] if "--" in given else given
        typed = {}
        for token in given:
            flag = token.split("=", 1)[0]
            if not flag.startswith("--"):
                continue
            if flag not in self._option_string_actions:
                matches = [s for s in self._option_string_actions if s.startswith(flag)]
                if not self.allow_abbrev or len(matches) != 1:
                    continue
                flag = matches[0]
            typed[self._option_string_actions[flag].dest] = flag
        return typed

    def _has_commands(self) -> bool:
        return any(isinstance(a, argparse._SubParsersAction) for a in self._actions)

    def _unknown_flags(self) -> list[str]:
        """The flags given to this parser that none of its flags (or their prefixes) match;
        for a parser of commands, those before the command (the rest are the command's)."""
        given = getattr(self, "_given", [])
        given = given[:given.index("--")] if "--" in given else given
        if self._has_commands():
            given = list(takewhile(lambda token: token.startswith("-"), given))
        known = list(self._option_string_actions)
        flags = [t.split("=", 1)[0] for t in given if t.startswith("-") and len(t) > 1
                 and not self._negative_number_matcher.match(t)]
        return [flag for flag in flags if flag not in known and not (
            self.allow_abbrev and flag.startswith("--") and any(k.startswith(flag)
                                                                for k in known))
                and not (flag[1] != "-" and all(f"-{c}" in known for c in flag[1:]))]  # -vq

    def _unrecognized(self, extras: list[str]) -> str:
        first = extras[0]
        if not first.startswith("-"):
            return (f"unrecognized argument {first!r}" + self._repeat_hint(first)
                    + _and_more(extras))
        flag = first.split("=", 1)[0]
        known = [s for s in self._option_string_actions if s.startswith("--")]
        return f"unrecognized flag {flag}" + did_you_mean(flag, known) + _and_more(extras)

    def _repeat_hint(self, stray: str) -> str:
        """`; --params takes one LAYER=FILE: repeat the flag, --params A --params B` when
        `stray` came right after the value of a repeatable flag (`--params A B`), which takes
        one value each time it is given; "" otherwise."""
        given = getattr(self, "_given", [])
        for at, token in enumerate(given):
            before = given[at - 1] if at else ""
            if token != stray or (before.startswith("-") and "=" not in before):
                continue
            flag, _, value = before.partition("=") if before.startswith("--") else (
                given[at - 2] if at >= 2 else "", "", before)
            action = self._option_string_actions.get(flag)
            if action is None and self.allow_abbrev and flag.startswith("--"):
                matches = [s for s in self._option_string_actions if s.startswith(flag)]
                if len(matches) == 1:  # an abbreviation: the flag it stands for
                    flag = matches[0]
                    action = self._option_string_actions[flag]
            if not isinstance(action, argparse._AppendAction) or action.nargs is not None:
                continue
            values = [value, *takewhile(lambda t: not t.startswith("-"), given[at:])]
            return (f"; {flag} takes one {action.metavar or 'value'}: repeat the flag, "
                    + " ".join(f"{flag} {v}" for v in values))
        return ""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            what, listed = "value", choices
            if isinstance(action, argparse._SubParsersAction):  # COMMAND, ACTION, LAYER
                what = str(action.metavar or "command").lower()
                listed = [a.dest for a in action._choices_actions]  # without the aliases
            close = did_you_mean(str(value), choices)
            raise argparse.ArgumentError(
                action, f"unknown {what} {value!r}{close}; choose from {', '.join(listed)}")


class Commands(argparse._SubParsersAction):
    """Subcommands (see the module docstring)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", HelpFormatter)
        if "help" in kwargs and "description" not in kwargs:
            kwargs["description"] = kwargs["help"][:1].upper() + kwargs["help"][1:] + "."
        parser = super().add_parser(name, **kwargs)
        add_global_flags(parser, top=False)
        return parser

    def add_lazy(self, name: str, build: Build, **kwargs: Any) -> argparse.ArgumentParser:
        """A subcommand whose flags `build(parser)` adds when the command is used."""
        parser = self.add_parser(name, **kwargs)
        parser.build_later = build
        return parser

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        chosen = self._name_parser_map.get(values[0])
        if chosen is not None:
            complete(chosen)
        super().__call__(parser, namespace, values, option_string)


class Switch(argparse.BooleanOptionalAction):
    """--flag / --no-flag, the negative also spelled --no_flag (as every flag takes _ or -)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.option_strings += [s.replace("--no-", "--no_", 1) for s in self.option_strings
                                if s.startswith("--no-")]

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if option_string in self.option_strings:
            setattr(namespace, self.dest, not option_string.startswith(("--no-", "--no_")))


def complete(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser` with the flags of a lazily built command added."""
    build = getattr(parser, "build_later", None)
    if build is not None:
        parser.build_later = None
        build(parser)
    return parser


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
         ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command path, parser) under `parser`, itself first, lazy ones built."""
    complete(parser)
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action._name_parser_map.items():
                if id(sub) not in seen:  # aliases share a parser
                    seen.add(id(sub))
                    yield from walk(sub, (*path, name))


def add_global_flags(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """`-v` and `-q`; on a subcommand (`top=False`) they only override the value given before
    the command when given (before or after the command, both work)."""
    default = False if top else argparse.SUPPRESS
    group = parser.add_argument_group("global options")
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="log each step's details to stderr, and show the traceback of an "
                            "error")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="no progress bars or progress lines (warnings and errors only)")


def typed_flags(args: argparse.Namespace) -> dict[str, str]:
    """{dest: the long flag as the user typed it} of a namespace `CommandParser` parsed."""
    return dict(getattr(args, TYPED, {}))


def help_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A `run` that prints `parser`'s help and exits 2: a command group given no action."""
    def show(_: argparse.Namespace) -> int:
        parser.print_help(sys.stdout)
        return 2

    return show


def _and_more(extras: list[str]) -> str:
    more = [e for e in extras[1:] if e.startswith("-")]
    return f" (and {' '.join(more)})" if more else ""
