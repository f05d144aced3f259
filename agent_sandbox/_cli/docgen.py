"""Shell completion, the man page and the configuration reference, rendered from the CLI's own
argparse parser (``_cli._parser``) and the configuration schema (``_config``), so that they
cannot drift from what the program accepts.

Imported only by ``agent-sandbox completion`` and ``scripts/gen-docs.py``, never on the launch
path. ``tests/unit/test_docgen.py`` fails when a committed file in ``GENERATED`` differs from
what this renders now.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

from agent_sandbox import __version__, _config, _presets
from agent_sandbox._cli import EPILOG, SUBCOMMANDS, _Parser, _parser

SHELLS = ("bash", "zsh", "fish")
# What to offer for an option's free value, by its metavar.
_FILE_KINDS = {"DIR": "dir", "PATH": "file", "FILE": "file"}


class Option(NamedTuple):
    flags: tuple[str, ...]  # ("-q", "--quiet")
    help: str
    metavar: str = ""  # "" for a switch
    values: tuple[str, ...] = ()  # the only values it accepts, when they are a closed set
    complete: str = ""  # for a free value: "dir", "file", or "" (nothing to offer)
    repeatable: bool = False
    group: str = "options"


class Subcommand(NamedTuple):
    name: str
    summary: str
    usage: str  # what follows "agent-sandbox NAME"
    options: tuple[Option, ...]
    # What its other words are: "command" (the confined command, as at the top level), "path"
    # (a path; then -- COMMAND, as explain), or "" (only ``args``, or nothing to offer).
    operand: str = ""
    args: tuple[str, ...] = ()  # the values of its first word, if a closed set


def _option(action: argparse.Action, group: str) -> Option:
    takes_value = action.nargs != 0
    metavar = str(action.metavar or action.dest.upper()) if takes_value else ""
    # --agent is checked against the preset files by the CLI, not by argparse.
    values = _preset_values() if action.dest == "agent" else tuple(action.choices or ())
    return Option(tuple(action.option_strings), action.help or "", metavar, values,
                  _FILE_KINDS.get(metavar, ""), isinstance(action, argparse._AppendAction),
                  group)


def _preset_values() -> tuple[str, ...]:
    return (*_presets.names(), "none")


def options(parser: argparse.ArgumentParser | None = None) -> tuple[Option, ...]:
    """Every option of ``parser`` (the CLI's by default), in its groups' order."""
    parser = parser or _parser()
    return tuple(_option(action, group.title or "options")
                 for group in parser._action_groups for action in group._group_actions
                 if action.option_strings)


def _described() -> tuple[Subcommand, ...]:
    """What each subcommand takes. Their parsers are built where they run, so these are
    written out; tests/cli/test_completion.py checks them against each one's --help."""
    main = options()
    agent = Option(("--agent",), "the agent preset", "PRESET", _preset_values())
    as_json = Option(("--json",), "machine-readable output")
    # explain takes the launch's options, but not those that do not launch.
    launch = tuple(o for o in main if o.flags[-1] not in ("--dry-run", "--check", "--json"))
    return (
        Subcommand("config", "print every effective setting and where it came from (the "
                   "files, AGENT_SANDBOX_* variables, the agent preset, the flags)",
                   "[OPTIONS] [[--] COMMAND]", main, "command"),
        Subcommand("explain", "say what a launch with these options would make of PATH or "
                   "HOST, and which rule and which layer decide it",
                   "PATH|HOST[:PORT] [OPTIONS] [-- COMMAND]",
                   (*launch, Option(("--path",), "explain this path (whatever it looks like)",
                                    "PATH", complete="file"),
                    Option(("--host",), "explain this host (whatever it looks like)", "HOST")),
                   "path"),
        Subcommand("ps", "list the running sandboxes", "[--json]", (as_json,)),
        Subcommand("stop", "stop a running sandbox: SIGTERM to its command, SIGKILL 5 s later",
                   "NAME", ()),
        Subcommand("log", "show the decision log: connections allowed and denied, bypasses, "
                   "starts and exits", "[-f] [--session NAME] [--json]",
                   (Option(("-f", "--follow"), "keep printing new records"),
                    Option(("--session",), "only this session's records", "NAME"), as_json)),
        Subcommand("attach", "attach this terminal to a detached sandbox (detach again with "
                   "Ctrl-\\)", "NAME", ()),
        Subcommand("shell-hook", "what a Nix dev shell's hook runs: a banner, and a check "
                   "that COMMAND reaches the sandbox wrapper",
                   "[--agent PRESET] [--command NAME] [--wrapper PATH]",
                   (agent, Option(("--command",), "the confined command's name", "NAME"),
                    Option(("--wrapper",), "the wrapper it must resolve to", "PATH",
                           complete="file"))),
        Subcommand("agent-wrapper", "what a Nix dev shell's agent wrapper runs: COMMAND "
                   "confined with PRESET, or unconfined (warned, logged) with "
                   "AGENT_SANDBOX=false", "--agent PRESET -- COMMAND [ARG...]", (agent,),
                   "command"),
        Subcommand("completion", "print the completion script for SHELL", "bash|zsh|fish",
                   (), args=SHELLS),
    )


def subcommands() -> tuple[Subcommand, ...]:
    """The words ``_cli.SUBCOMMANDS`` dispatches, in its order. Rendering fails (and with it
    the tests) while one there is not described here, or one described here is gone."""
    described = {s.name: s for s in _described()}
    if described.keys() != SUBCOMMANDS.keys():
        raise LookupError("agent_sandbox/_docgen.py describes the subcommands "
                          f"{sorted(described)}, _cli.SUBCOMMANDS has {sorted(SUBCOMMANDS)}")
    return tuple(described[name] for name in SUBCOMMANDS)


def completion_main(argv: Sequence[str]) -> int:
    """``agent-sandbox completion bash|zsh|fish``: print that shell's completion script."""
    p = _Parser(prog="agent-sandbox completion", allow_abbrev=False,
                description="Print the completion script for SHELL.")
    p.add_argument("shell", choices=SHELLS)
    print(completion(p.parse_args(argv).shell), end="")
    return 0


def completion(shell: str) -> str:
    render: dict[str, Callable[[tuple[Option, ...], tuple[Subcommand, ...]], str]] = {
        "bash": _bash, "zsh": _zsh, "fish": _fish}
    return render[shell](options(), subcommands())


def _valued(opts: Sequence[Option]) -> list[str]:
    return [flag for o in opts if o.metavar for flag in o.flags]


def _all_flags(opts: Sequence[Option]) -> str:
    return " ".join(flag for o in opts for flag in o.flags)


def _takes_command(sub: Subcommand | None) -> bool:
    return sub is None or sub.operand in ("command", "path")


# --- bash ------------------------------------------------------------------------------------

_BASH_HEAD = """\
# bash completion for agent-sandbox, generated from its command-line definition.
# Load it with: source <(agent-sandbox completion bash)
# or install it: agent-sandbox completion bash \\
#                  > ~/.local/share/bash-completion/completions/agent-sandbox

_agent_sandbox_reply() {  # COMPREPLY: what compgen "$@" offers for $cur
    mapfile -t COMPREPLY < <(compgen "$@" -- "$cur")
}

_agent_sandbox_files() {  # $1: -f or -d
    compopt -o filenames 2>/dev/null
    _agent_sandbox_reply "$1"
}

_agent_sandbox_command() {  # the confined command starts at word $1
    if declare -F _command_offset >/dev/null; then
        _command_offset "$1"  # bash-completion: the command's own completion
    elif (( $1 == COMP_CWORD )); then
        _agent_sandbox_reply -c
    else
        _agent_sandbox_files -f
    fi
}
"""


def _bash_context(name: str, sub: Subcommand | None, opts: Sequence[Option],
                  names: Sequence[str]) -> str:
    """One function per subcommand: skip options and their values up to the word being
    completed, then offer an option's values, the options, or the operand."""
    operand = "command" if sub is None else sub.operand
    args = sub.args if sub else ()
    offered = [o for o in opts if o.values or o.complete]
    lines = [f"_agent_sandbox_{name}() {{  # words from $1 on"]
    if _valued(opts) or operand:
        lines += _bash_skip(_takes_command(sub), _valued(opts), operand == "command")
    if _takes_command(sub):
        lines.append('    if (( i < COMP_CWORD )); then _agent_sandbox_command "$i"; return; fi')
    if _valued(opts):  # free values (a size, a host...) have nothing to offer
        lines.append("    if (( i > COMP_CWORD )); then  # the value of the option in $prev")
        if offered:
            lines += ["        case $prev in",
                      *(f"            {'|'.join(o.flags)}) {_bash_value(o)} ;;" for o in offered),
                      "        esac"]
        lines += ["        return", "    fi"]
    if _takes_command(sub):
        lines.append('    if [[ -n $dashdash ]]; then _agent_sandbox_command "$i"; return; fi')
    if opts:
        lines.append("    if [[ $cur == -* ]]; then "
                     f"_agent_sandbox_reply -W '{_all_flags(opts)}'; return; fi")
    if sub is None:
        lines += ["    if (( COMP_CWORD == 1 )); then  # a subcommand or the command",
                  f"        _agent_sandbox_reply -W '{' '.join(names)}'",
                  '        local -a subcommands=("${COMPREPLY[@]}")',
                  "        _agent_sandbox_command 1",
                  '        COMPREPLY=("${subcommands[@]}" "${COMPREPLY[@]}")',
                  "        return", "    fi"]
    if operand == "command":
        lines.append('    _agent_sandbox_command "$i"')
    elif operand == "path":
        lines.append("    _agent_sandbox_files -f")
    elif args:
        lines.append(f"    (( COMP_CWORD == $1 )) && _agent_sandbox_reply -W '{' '.join(args)}'")
    if len(lines) == 1:
        lines.append("    :  # nothing to offer")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _bash_value(o: Option) -> str:
    if o.values:
        return f"_agent_sandbox_reply -W '{' '.join(o.values)}'"
    return f"_agent_sandbox_files -{o.complete[0]}"


def _bash_skip(dashdash: bool, valued: Sequence[str], command: bool) -> list[str]:
    """Advance i past the options, their values and (unless they start the command) the
    other words, to the word being completed; past it when that is an option's value."""
    lines = ["    local i=$1" + (" dashdash=" if dashdash else ""),
             "    while (( i < COMP_CWORD )); do",
             "        case ${COMP_WORDS[i]} in"]
    if dashdash:
        lines.append("            --) dashdash=1; (( i++ )); break ;;")
    if valued:
        lines += [f"            {'|'.join(valued)})",
                  "                [[ ${COMP_WORDS[i+1]} == = ]] && (( i++ ))",
                  "                (( i += 2 )) ;;"]
    if command:
        lines += ["            -*) (( i++ )) ;;", "            *) break ;;"]
    else:
        lines.append("            *) (( i++ )) ;;")
    return [*lines, "        esac", "    done"]


def _bash(opts: tuple[Option, ...], subs: tuple[Subcommand, ...]) -> str:
    names = [s.name for s in subs]
    contexts = [_bash_context("main", None, opts, names)]
    contexts += [_bash_context(_ident(s.name), s, s.options, names) for s in subs]
    cases = "\n".join(f"            {s.name}) context={_ident(s.name)} ;;" for s in subs)
    return _BASH_HEAD + "\n" + "\n".join(contexts) + f"""
_agent_sandbox() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} context=main
    # bash splits --opt=value at '=' (COMP_WORDBREAKS): complete the value alone.
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]]; then
        prev=${{COMP_WORDS[COMP_CWORD-2]}}
    fi
    # A subcommand is only ever the first word; after it, its own words.
    if (( COMP_CWORD > 1 )); then
        case ${{COMP_WORDS[1]}} in
{cases}
        esac
    fi
    if [[ $context == main ]]; then _agent_sandbox_main 1; else "_agent_sandbox_$context" 2; fi
}}

complete -F _agent_sandbox agent-sandbox
"""


def _ident(name: str) -> str:
    return name.replace("-", "_")


# --- zsh -------------------------------------------------------------------------------------

def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_spec(o: Option) -> str:
    """One ``_arguments`` spec: exclusions, repetition, the flags, [help], :value:action."""
    described = "[" + re.sub(r"([\[\]\\])", r"\\\1", o.help) + "]"
    value = ""
    if o.metavar:
        action = (f"({' '.join(o.values)})" if o.values else
                  {"dir": "_directories", "file": "_files"}.get(o.complete, " "))
        value = ":" + o.metavar.replace(":", "\\:") + ":" + action
    ends = {"--help", "--version"} & set(o.flags)
    # _arguments offers an option once by itself; its other spellings must be excluded too.
    aliases = len(o.flags) > 1 and not o.repeatable
    exclusive = "(- *)" if ends else (f"({' '.join(o.flags)})" if aliases else "")
    prefix = "*" if o.repeatable else ""
    equals = "=" if o.metavar and all(f.startswith("--") for f in o.flags) else ""
    if len(o.flags) == 1:
        return _zsh_quote(exclusive + prefix + o.flags[0] + equals + described + value)
    flags = ",".join(f + equals for f in o.flags)
    return _zsh_quote(exclusive + prefix) + "{" + flags + "}" + _zsh_quote(described + value)


def _zsh_context(name: str, sub: Subcommand | None, opts: Sequence[Option]) -> str:
    specs = [_zsh_spec(o) for o in opts]
    operand = "command" if sub is None else sub.operand
    head = ""
    if operand == "command":
        specs += ["'(-)1:command:_agent-sandbox_command'", "'*::argument:_normal'"]
    elif operand == "path":
        specs.append("'*:path:_files'")
        # After --, the confined command and its own completion.
        head = ("  local dashdash=${words[(i)--]}\n"
                "  if (( dashdash < CURRENT )); then\n"
                "    shift $dashdash words; (( CURRENT -= dashdash )); _normal; return\n"
                "  fi\n")
    elif sub is not None and sub.args:
        specs.append(f"'1:{sub.usage}:({' '.join(sub.args)})'")
    elif sub is not None and sub.usage == "NAME":
        specs.append("'1:NAME: '")
    body = " \\\n    ".join(["_arguments -s -S :", *specs])
    return f"_agent-sandbox_{name}() {{\n{head}  {body}\n}}\n"


def _zsh(opts: tuple[Option, ...], subs: tuple[Subcommand, ...]) -> str:
    described = " ".join(_zsh_quote(f"{s.name}:{s.summary}") for s in subs)
    contexts = [_zsh_context("main", None, opts)]
    contexts += [_zsh_context(_ident(s.name), s, s.options) for s in subs]
    return f"""#compdef agent-sandbox
# zsh completion for agent-sandbox, generated from its command-line definition.
# Install it as _agent-sandbox in a directory of $fpath, before compinit:
#   agent-sandbox completion zsh > ~/.zfunc/_agent-sandbox   # with fpath=(~/.zfunc $fpath)

_agent-sandbox_command() {{  # the confined command's name; as the first word, a subcommand
  if [[ -z $subcommand ]] && (( CURRENT == 2 )); then
    local -a subcommands=({described})
    _describe -t subcommands subcommand subcommands
  fi
  _command_names -e
}}

{chr(10).join(contexts)}
_agent-sandbox() {{
  # A subcommand is only ever the first word; after it, its own words.
  local subcommand=
  if (( CURRENT > 2 )) && [[ $words[2] == ({'|'.join(s.name for s in subs)}) ]]; then
    subcommand=$words[2]
    words[2]=()
    (( CURRENT-- ))
  fi
  # After a -- that comes first, the confined command (_arguments -S misreads that one).
  if (( CURRENT > 2 )) && [[ $words[2] == -- && $subcommand != explain ]]; then
    shift 2 words
    (( CURRENT -= 2 ))
    _normal
    return
  fi
  _agent-sandbox_${{${{subcommand:-main}}//-/_}}
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _agent-sandbox "$@"
else
  compdef _agent-sandbox agent-sandbox
fi
"""


# --- fish ------------------------------------------------------------------------------------

def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(o: Option, condition: str) -> str:
    parts = ["complete -c agent-sandbox", "-n", _fish_quote(condition)]
    for flag in o.flags:
        parts += ["-l", flag[2:]] if flag.startswith("--") else ["-s", flag[1:]]
    if o.values:
        parts += ["-x", "-a", _fish_quote(" ".join(o.values))]
    elif o.complete == "dir":
        parts += ["-x", "-a", "'(__fish_complete_directories)'"]
    elif o.complete == "file":
        parts += ["-r", "-F"]
    elif o.metavar:
        parts.append("-x")
    parts += ["-d", _fish_quote(o.help)]
    return " ".join(parts)


def _fish_context(sub: Subcommand | None, opts: Sequence[Option]) -> list[str]:
    at = f"__agent_sandbox_in {sub.name if sub else 'main'}; and __agent_sandbox_at"
    lines = [_fish_option(o, f"{at} options") for o in opts]
    operand = "command" if sub is None else sub.operand
    if operand == "command":
        lines.append(f"complete -c agent-sandbox -n '{at} options command' -a "
                     "'(__fish_complete_command)'")
    elif operand == "path":
        lines += [f"complete -c agent-sandbox -n '{at} options' -F",
                  f"complete -c agent-sandbox -n '{at} command' -a '(__fish_complete_command)'"]
    elif sub is not None and sub.args:
        lines.append(f"complete -c agent-sandbox -n '{at} options' -a "
                     f"{_fish_quote(' '.join(sub.args))}")
    if _takes_command(sub):
        lines.append(f"complete -c agent-sandbox -n '{at} args' -a '(__agent_sandbox_args)'")
    return lines


def _fish_valued(subs: Sequence[Subcommand]) -> str:
    """The position function's per-subcommand settings: options with a value, and whether
    the first other word starts the confined command."""
    return "\n".join(f"        case {s.name}\n            set valued {' '.join(_valued(s.options))}"
                     + ("\n            set operand command" if s.operand == "command" else "")
                     for s in subs)


def _fish(opts: tuple[Option, ...], subs: tuple[Subcommand, ...]) -> str:
    lines = _fish_context(None, opts)
    lines += [f"complete -c agent-sandbox -n '__agent_sandbox_at first' -a {s.name} "
              f"-d {_fish_quote(s.summary)}" for s in subs]
    for s in subs:
        lines += _fish_context(s, s.options)
    return f"""# fish completion for agent-sandbox, generated from its command-line definition.
# Install it: agent-sandbox completion fish > ~/.config/fish/completions/agent-sandbox.fish

function __agent_sandbox_in --description 'Whether the words are those of subcommand $argv'
    set -l tokens (commandline -opc)
    if set -q tokens[2]; and contains -- $tokens[2] {' '.join(s.name for s in subs)}
        test $tokens[2] = $argv[1]
    else
        test main = $argv[1]
    end
end

# Where the word being completed is: first (the first word), options, command (the confined
# command's name, after --), or args and the index of the command's first word.
function __agent_sandbox_position
    set -l tokens (commandline -opc)
    if test (count $tokens) -eq 1
        echo first
        return
    end
    set -l i 3
    set -l operand
    set -l valued {' '.join(_valued(opts))}
    switch $tokens[2]
{_fish_valued(subs)}
        case '*'
            set i 2
            set operand command
    end
    while test $i -le (count $tokens)
        if test $tokens[$i] = --
            test $i -eq (count $tokens); and echo command; or printf '%s\\n' args (math $i + 1)
            return
        else if contains -- $tokens[$i] $valued
            set i (math $i + 2)
        else if string match -q -- '-*' $tokens[$i]; or test -z "$operand"
            set i (math $i + 1)
        else
            printf '%s\\n' args $i
            return
        end
    end
    echo options
end

function __agent_sandbox_at --description 'Whether the position is one of $argv'
    set -l position (__agent_sandbox_position)
    contains -- $position[1] $argv
    or test $position[1] = first -a "$argv[1]" = options
end

function __agent_sandbox_args --description "The confined command's own completion"
    set -l position (__agent_sandbox_position)
    set -l words (commandline -opc) (commandline -ct)
    set words $words[$position[2]..-1]
    complete -C (string join -- ' ' (string escape -- $words))
end

complete -c agent-sandbox -f
{chr(10).join(lines)}
"""


# --- man page --------------------------------------------------------------------------------

def _roff(text: str) -> str:
    """Text for a roff line: backslashes escaped, options' dashes as \\- (not hyphens)."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<![\w-])(--?[a-zA-Z][\w-]*|--(?=\s|$))",
                  lambda m: m.group(1).replace("-", "\\-"), text)
    return "\\&" + text if text.startswith((".", "'")) else text


def _epilog_sections() -> dict[str, list[tuple[str, str]]]:
    """The help epilog's sections ("exit status", "examples") as (term, text) items; a line
    indented deeper than the items continues the one before it."""
    sections: dict[str, list[tuple[str, str]]] = {}
    items: list[tuple[str, str]] = []
    for line in EPILOG.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            items = sections.setdefault(line[:-1], [])
        elif line.startswith("   ") and items:  # its text, or more of it
            term, text = items[-1]
            items[-1] = (term, f"{text} {line.strip()}".strip())
        elif line.strip():
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            items.append((parts[0], parts[1] if len(parts) == 2 else ""))
    return sections


def _tagged(items: Sequence[tuple[str, str]]) -> list[str]:
    """(term, text) items as tagged paragraphs; an item without a text as a plain one."""
    out = []
    for term, text in items:
        out += [".TP", ".B " + _roff(term), _roff(text)] if text else [".PP", _roff(term)]
    return out


def _man_option(o: Option) -> list[str]:
    flags = ", ".join(f"\\fB{_roff(f)}\\fR" for f in o.flags)
    value = f" \\fI{_roff(o.metavar)}\\fR" if o.metavar else ""
    values = f" One of: {', '.join(o.values)}." if o.values else ""
    repeat = "" if not o.repeatable or "repeatable" in o.help else " Repeatable."
    return [".TP", flags + value, _roff(o.help[:1].upper() + o.help[1:] + "." + values + repeat)]


def man_page() -> str:
    parser = _parser()
    opts = options(parser)
    exits = _epilog_sections()
    lines = [f'.TH AGENT\\-SANDBOX 1 "" "agent\\-sandbox {__version__}" "User Commands"',
             ".\\\" Generated by scripts/gen-docs.py from the command-line definition: "
             "do not edit.",
             ".SH NAME", "agent\\-sandbox \\- run a command or an LLM coding agent confined",
             ".SH SYNOPSIS", ".B agent\\-sandbox", "[\\fIOPTIONS\\fR] [\\fB\\-\\-\\fR] "
             "\\fICOMMAND\\fR [\\fIARG\\fR...]"]
    for s in subcommands():
        lines += [".br", f".B agent\\-sandbox {_roff(s.name)}", _roff(s.usage)]
    lines += [".SH DESCRIPTION", _roff(parser.description or ""), ".PP",
              "Everything after the first word that is not an option (or after \\fB\\-\\-\\fR) "
              "is the command and its arguments, passed unchanged. Options are never "
              "abbreviated. Every option can also come from a configuration file or an "
              f"\\fB{_config.ENV_PREFIX}\\fR* variable; see \\fBCONFIGURATION\\fR."]
    for group in dict.fromkeys(o.group for o in opts):
        lines.append(".SH " + ("OPTIONS" if group == "options" else f"{group.upper()} OPTIONS"))
        lines += [line for o in opts if o.group == group for line in _man_option(o)]
    lines.append(".SH SUBCOMMANDS")
    lines.append("A subcommand is recognised only as the first word: a command with one of "
                 "these names runs as \\fBagent\\-sandbox \\-\\- \\fINAME\\fR.")
    for s in subcommands():
        lines += [".TP", f"\\fB{_roff(s.name)}\\fR {_roff(s.usage)}",
                  _roff(s.summary[:1].upper() + s.summary[1:] + ".")]
    lines += [".SH EXIT STATUS", *_tagged(exits["exit status"]),
              ".SH CONFIGURATION", *_man_configuration(),
              ".SH ENVIRONMENT", *_man_environment(),
              ".SH FILES", *_man_files(),
              ".SH EXAMPLES", *_tagged(exits["examples"]),
              ".SH SEE ALSO", "\\fBbwrap\\fR(1); the documentation in the source tree: "
              "docs/usage.md, docs/configuration.md, docs/config\\-reference.md, "
              "docs/threat\\-model.md, docs/faq.md."]
    return "\n".join(lines) + "\n"


def _man_configuration() -> list[str]:
    return [
        "Layers, each overriding the ones before it; lists add up: the built\\-in values, "
        f"\\fI{_roff(_config.SYSTEM_FILE)}\\fR, "
        "\\fI$XDG_CONFIG_HOME/agent\\-sandbox/config.toml\\fR, "
        f"\\fI{_roff(_config.PROJECT_FILE)}\\fR at the project's top (it may only tighten the "
        f"policy: keys {_roff(', '.join(_config.PROJECT_KEYS))}), the "
        f"\\fB{_config.ENV_PREFIX}\\fR\\fIKEY\\fR variables (lists comma\\-separated), then the "
        "flags. Keys are the long "
        "options' names with _ for \\-. \\fBagent\\-sandbox config\\fR prints the effective "
        "values and where each came from."]


def _man_environment() -> list[str]:
    from agent_sandbox._bwrap import ENV_OVERRIDE
    from agent_sandbox._cgroup import PARENT_VARIABLE
    from agent_sandbox._devshell import SWITCH

    lines = []
    flags = _options_by_key()
    for key in _config.KEYS:
        metavar = flags[key].metavar if key in flags else ""
        lines += [".TP", f"\\fB{_config.ENV_PREFIX}{key.upper()}\\fR",
                  f"Sets {_roff(key)}: {_roff(_kind(key, metavar))}."]
    return [
        *lines, ".TP", f"\\fB{ENV_OVERRIDE}\\fR",
        "The bwrap to use (an absolute path) instead of a root\\-owned system one.",
        ".TP", f"\\fB{PARENT_VARIABLE}\\fR",
        "The delegated cgroup v2 directory for \\fB\\-\\-memory\\fR, \\fB\\-\\-pids\\fR, "
        "\\fB\\-\\-cpus\\fR.",
        ".TP", f"\\fB{SWITCH}\\fR",
        "Read by the Nix dev shells' agent wrappers only: false, 0 or no runs the agent "
        "unconfined, with a warning and a log record.",
        ".TP", "\\fBTMPDIR\\fR, \\fBXDG_CONFIG_HOME\\fR, \\fBXDG_STATE_HOME\\fR, "
        "\\fBXDG_DATA_HOME\\fR, \\fBXDG_CACHE_HOME\\fR",
        "Where the work directories, the user configuration, the decision log, the agents' "
        "homes and the compiled seccomp filter live."]


def _man_files() -> list[str]:
    return [".TP", f"\\fI{_roff(_config.SYSTEM_FILE)}\\fR, "
            "\\fI~/.config/agent\\-sandbox/config.toml\\fR",
            "The system and user configuration.",
            ".TP", f"\\fI{_roff(_config.PROJECT_FILE)}\\fR",
            "The project's own configuration: tighten only, read\\-only inside.",
            ".TP", "\\fI~/.local/state/agent\\-sandbox/decisions.jsonl\\fR",
            "The network decision log: one JSON line per allowed or denied connection.",
            ".TP", "\\fI~/.local/share/agent\\-sandbox/homes/\\fRNAME",
            "Each agent preset's own persistent home, bound at $HOME inside."]


# --- configuration reference -----------------------------------------------------------------

# The keys that have no flag of their own.
_KEY_HELP = {
    "protect": "more names the host runs, made read-only in the project and in each "
               "repository nested in it (relative paths, no `..`)",
    "unprotect": "built-in protected names you accept to leave writable",
    "drop_allow": "hosts to remove from the allow-list the other layers built",
}


def _kind(key: str, metavar: str = "") -> str:
    """A key's type, with the flag's metavar (SIZE, HOST[:PORT]...) when there is one."""
    if key in _config.LIST_KEYS or key == "drop_allow":
        return f"list of {metavar or 'NAME'}"
    if key in _config.BOOL_KEYS:
        return "true or false"
    if key in _config.PATH_KEYS:
        return f"{metavar}, an absolute path or ~/PATH"
    if key == "net":
        return " | ".join(reversed(_config.NET_ORDER))
    return f"{metavar}, a string or a number" if metavar else "a string or a number"


def _size(n: int) -> str:
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def _defaults() -> dict[str, str]:
    """The built-in value of each key that has one other than unset, empty or false."""
    from agent_sandbox._limits import DEFAULT_FSIZE, DEFAULT_NOFILE
    from agent_sandbox._policy import DEFAULT_HOME_SIZE
    from agent_sandbox._protect import GIT_PROTECTED, PROTECTED

    return {"net": "none; filtered when an allow-list is given",
            **dict.fromkeys(("memory", "pids", "cpus", "timeout"), "no limit"),
            "nofile": str(DEFAULT_NOFILE), "fsize": _size(DEFAULT_FSIZE),
            "home_size": _size(DEFAULT_HOME_SIZE),
            "protect": "empty; protected anyway: " + ", ".join(f"`{p}`" for p in PROTECTED)
                       + "; in git directories " + ", ".join(f"`{p}`" for p in GIT_PROTECTED)}


def _row(key: str, flags: dict[str, Option], defaults: dict[str, str]) -> str:
    flag = flags.get(key)
    env = f"`{_config.ENV_PREFIX}{key.upper()}`" if key in _config.KEYS else "-"
    project = ("only there" if key not in _config.KEYS else
               "yes" if key in _config.PROJECT_KEYS else "no")
    default = defaults.get(key, "false" if key in _config.BOOL_KEYS else
                           "empty" if key in (*_config.LIST_KEYS, "drop_allow") else "unset")
    kind = _kind(key, (flag or flags["allow"]).metavar if flag or key == "drop_allow" else "")
    # Markdown would take a * (*.DOMAIN, /dev/nvidia*) for emphasis.
    meaning = (flag.help if flag else _KEY_HELP[key]).replace("*", "\\*")
    cells = (f"`{key}`", kind, default, project, env,
             f"`{flag.flags[-1]}`" if flag else "-", meaning)
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _options_by_key() -> dict[str, Option]:
    """The options named like a configuration key (--allow-private: allow_private)."""
    return {o.flags[-1][2:].replace("-", "_"): o for o in options()}


def config_reference() -> str:
    flags = _options_by_key()
    defaults = _defaults()
    rows = [_row(key, flags, defaults) for key in (*_config.KEYS, "drop_allow")]
    return f"""# Configuration reference

<!-- Generated by scripts/gen-docs.py from agent_sandbox/_config.py and the command-line
definition: do not edit; tests/unit/test_docgen.py fails when it is stale. -->

Every key, its type, its built-in default, whether the project file
(`{_config.PROJECT_FILE}`) may set it, its variable and its flag. The files are
`{_config.SYSTEM_FILE}`, `$XDG_CONFIG_HOME/agent-sandbox/config.toml`
(`~/.config/...`) and `{_config.PROJECT_FILE}` at the project's top; how the layers combine
and why the project file may only tighten: [configuration.md](configuration.md).

In a variable, a list is comma-separated (`{_config.ENV_PREFIX}ALLOW=a.example,b.example`)
and a boolean is `true`/`false` (also `1`/`0`, `yes`/`no`). In the project file `net` may
only become stricter (`host` < `filtered` < `none`) and limits may only be set or lowered.

| key | type | default | project file | variable | flag | meaning |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


# Each committed file (relative to the repository) and what renders it.
GENERATED: dict[str, Callable[[], str]] = {
    "docs/agent-sandbox.1": man_page,
    "docs/config-reference.md": config_reference,
}
