#pragma once

// Shell completion for treatyctl (`treatyctl completion bash|zsh`): a script,
// generated from the command line definition itself so it never lags behind
// it, that completes subcommands (nested: `2pc c` -> `commit`) and the long
// options of the command typed so far (global ones included). Values (URLs,
// gtids, files) are not completed, except files after `saga submit`.
//
//   source <(treatyctl completion bash)     # or save it in bash-completion's directory
//   source <(treatyctl completion zsh)      # uses zsh's bashcompinit
//
// Not thread-safe (reads `app`); pure otherwise.

#include <string>

#include <CLI/CLI.hpp>

namespace treaty::ctl {

// The completion script of `app` for `shell` ("bash" or "zsh"); "" for any
// other shell.
std::string CompletionScript(const CLI::App& app, const std::string& shell);

}  // namespace treaty::ctl
