// treatyctl: the operators' and scripts' CLI for Treaty coordinators.
//
//   treatyctl [--coordinator URL[,URL...]] [--timeout-ms N] [--json] COMMAND ...
//     saga submit FILE [--wait]
//     2pc begin [--gtid G] [--timeout-ms N] [--no-one-phase (no effect: the default)]
//     2pc enlist GTID --name N --prepare URL --commit URL --abort URL [--payload JSON]
//                [--one-phase]
//     2pc commit GTID | 2pc abort GTID
//     get GTID
//     list [--state S] [--kind K] [--needs-attention] [--paused] [--limit N] [--cursor C]
//     retry GTID [--reason TEXT] | abort GTID [--reason TEXT]
//     pause GTID [--reason TEXT] | resume GTID [--reason TEXT]
//     resolve GTID BRANCH --as COMPENSATED|COMMITTED|ABORTED --reason TEXT
//     cluster
//     completion bash|zsh
//
// --json, before or after the command, prints the coordinator's JSON answer
// (raw times in ms) instead of text; text shows times as UTC
// ("2026-12-01 09:30:12.345 UTC"). `list` prints "next page: --cursor C"
// when more rows follow.
//
// --coordinator (env TREATY_COORDINATOR, default http://127.0.0.1:7480) may
// list several coordinators: on a connection error the next one is tried.
// Credentials (docs/security.md): --token (env TREATY_TOKEN) is sent as
// `Authorization: Bearer TOKEN` and never printed; https:// coordinators are
// verified against --ca (env TREATY_CA; default: the system's trust store),
// and --cert/--key (env TREATY_CERT/TREATY_KEY) present a client certificate.
// Exit status (kExitCodesHelp, in --help): 0 ok, 1 the coordinator refused
// (message printed; also a missing or refused token, or a missing role),
// 2 usage error, 3 no coordinator reachable, 4 a waited saga or a 2PC commit
// ended ABORTED, 5 a waited saga was not finished when the wait ran out.

#include <cctype>
#include <cstdlib>
#include <iostream>
#include <utility>

#include <CLI/CLI.hpp>

#include "common/version.h"
#include "ctl/commands.h"
#include "ctl/completion.h"
#include "ctl/coordinator_client.h"

using namespace treaty::ctl;  // NOLINT: a main file

int main(int argc, char** argv) {
  CLI::App app{"treatyctl: operate Treaty coordinators"};
  app.require_subcommand(1);
  app.footer(kExitCodesHelp);
  // Global options may also follow the command (`treatyctl list --coordinator URL`).
  app.fallthrough();
  app.set_version_flag("--version", treaty::VersionLine("treatyctl"),
                       "Print the version, git commit and build type, and exit");
  std::string coordinators = "http://127.0.0.1:7480";
  int request_timeout_ms = 60000;
  app.add_option("--coordinator", coordinators, "Coordinator URL(s), comma-separated")
      ->envname("TREATY_COORDINATOR")
      ->capture_default_str();
  app.add_option("--request-timeout-ms", request_timeout_ms,
                 "Time-out of a request to one coordinator, in ms (each coordinator tried gets it)")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  Credentials credentials;
  app.add_option("--token", credentials.token, "Bearer token (prefer the environment variable)")
      ->envname("TREATY_TOKEN");
  app.add_option("--ca", credentials.tls.ca_file,
                 "PEM CA bundle for https:// coordinators (default: the system's trust store)")
      ->envname("TREATY_CA");
  app.add_option("--cert", credentials.tls.cert_file,
                 "PEM client certificate for coordinators that require one")
      ->envname("TREATY_CERT");
  app.add_option("--key", credentials.tls.key_file, "PEM private key of --cert")
      ->envname("TREATY_KEY");

  std::string gtid, file, name, prepare, commit, abort_url, payload, reason, branch, outcome;
  std::string shell;
  bool wait = false, as_json = false, no_one_phase = false, one_phase = false;
  // --json before the command, or after it on any command (json_flag).
  const char* kJsonHelp = "Print the coordinator's JSON answer (times in ms)";
  app.add_flag("--json", as_json, kJsonHelp);
  auto json_flag = [&](CLI::App* cmd) {
    cmd->add_flag("--json", as_json, kJsonHelp);
    return cmd;
  };
  int64_t timeout_ms = 0;
  ListOptions list;

  auto* saga = app.add_subcommand("saga", "Sagas")->require_subcommand(1);
  auto* saga_submit = saga->add_subcommand("submit", "Submit a saga from a JSON file");
  saga_submit->add_option("FILE", file, "The saga body (POST /v1/sagas)")->required();
  saga_submit->add_flag("--wait", wait,
                        "Answer once the saga is finished (exit 4 if ABORTED, 5 if still running)");
  json_flag(saga_submit);

  auto* tpc = app.add_subcommand("2pc", "Two-phase commit")->require_subcommand(1);
  auto* begin = tpc->add_subcommand("begin", "Begin a 2PC transaction");
  begin->add_option("--gtid", gtid, "Transaction id (default: the server makes one)");
  begin->add_option("--timeout-ms", timeout_ms, "Deadline (undecided after it: aborted)")
      ->check(CLI::Range(int64_t{1}, int64_t{86400000}));
  begin->add_flag("--no-one-phase", no_one_phase,
                  "Accepted for old scripts; no effect (one-phase is declared per branch)");
  json_flag(begin);
  auto* enlist = tpc->add_subcommand("enlist", "Enlist a branch");
  enlist->add_option("GTID", gtid)->required();
  enlist->add_option("--name", name, "Branch name")->required();
  enlist->add_option("--prepare", prepare, "Prepare (try) URL")->required();
  enlist->add_option("--commit", commit, "Commit (confirm) URL")->required();
  enlist->add_option("--abort", abort_url, "Abort (cancel) URL")->required();
  enlist->add_option("--payload", payload, "JSON given to every call");
  enlist->add_flag("--one-phase", one_phase,
                   "The participant supports one-phase commit (used if it is the only branch)");
  json_flag(enlist);
  auto* tpc_commit = tpc->add_subcommand("commit", "Run the protocol; prints the decision");
  tpc_commit->add_option("GTID", gtid)->required();
  json_flag(tpc_commit);
  auto* tpc_abort = tpc->add_subcommand("abort", "Abort (before the commit decision)");
  tpc_abort->add_option("GTID", gtid)->required();
  json_flag(tpc_abort);

  auto* get = app.add_subcommand("get", "Show a transaction, its branches and history");
  get->add_option("GTID", gtid)->required();
  json_flag(get);

  auto* ls = app.add_subcommand("list", "List transactions, newest first");
  ls->add_option("--state", list.state, "e.g. COMMITTING");
  ls->add_option("--kind", list.kind, "saga or 2pc")->check(CLI::IsMember({"saga", "2pc"}));
  ls->add_flag("--needs-attention", list.needs_attention, "Only those needing attention");
  ls->add_flag("--paused", list.paused, "Only those an operator paused");
  ls->add_option("--limit", list.limit, "Rows")->check(CLI::Range(1, 1000))->capture_default_str();
  ls->add_option("--cursor", list.cursor, "Continue after the page whose 'next page' named it");
  json_flag(ls);

  // The operator actions on one transaction: GTID and an optional --reason.
  auto operator_command = [&](const char* name, const char* help) {
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_option("GTID", gtid)->required();
    cmd->add_option("--reason", reason, "Why (recorded in the history)");
    return json_flag(cmd);
  };
  auto* retry = operator_command("retry", "Operator: retry pending calls now");
  auto* force_abort = operator_command("abort", "Operator: force abort");
  auto* pause = operator_command("pause", "Operator: send no participant call until resume");
  auto* resume = operator_command("resume", "Operator: resume a paused transaction");
  auto* resolve = app.add_subcommand(
      "resolve", "Operator: record a branch's outcome after fixing it by hand; it then continues");
  resolve->add_option("GTID", gtid)->required();
  resolve->add_option("BRANCH", branch, "Saga step or 2PC branch name")->required();
  resolve->add_option("--as", outcome, "The branch's outcome")
      ->required()
      ->check(CLI::IsMember({"COMPENSATED", "COMMITTED", "ABORTED"}));
  resolve->add_option("--reason", reason, "Why (required; recorded in the history)")->required();
  json_flag(resolve);

  auto* cluster = app.add_subcommand("cluster", "Show coordinators and heartbeats");
  json_flag(cluster);

  auto* completion = app.add_subcommand("completion", "Print a shell completion script");
  completion->add_option("SHELL", shell, "bash or zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  if (completion->parsed()) {
    std::cout << CompletionScript(app, shell);
    return kExitOk;
  }
  list.json = as_json;

  std::vector<std::string> urls = SplitUrls(coordinators);
  if (urls.empty()) {
    std::cerr << "treatyctl: --coordinator is empty\n";
    return kExitUsage;
  }
  if (treaty::Status s = CheckCoordinatorUrls(urls); !s.ok()) {
    std::cerr << "treatyctl: " << s.message() << "\n";
    return kExitUsage;
  }
  // A token read from a file with $(cat FILE) or a here-string keeps no newline.
  while (!credentials.token.empty() &&
         std::isspace(static_cast<unsigned char>(credentials.token.back()))) {
    credentials.token.pop_back();
  }
  for (char ch : credentials.token) {
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) {
      std::cerr << "treatyctl: --token/TREATY_TOKEN holds a space or control character\n";
      return kExitUsage;
    }
  }
  if (credentials.tls.cert_file.empty() != credentials.tls.key_file.empty()) {
    std::cerr << "treatyctl: --cert and --key go together\n";
    return kExitUsage;
  }
  CoordinatorClient client(urls, request_timeout_ms, std::move(credentials));

  // The commands read what coordinators answer defensively; should a shape
  // still surprise them, say so instead of aborting.
  try {
    if (saga_submit->parsed()) return SagaSubmit(client, file, wait, as_json);
    if (begin->parsed()) return Begin2pc(client, gtid, timeout_ms, no_one_phase, as_json);
    if (enlist->parsed()) {
      return Enlist2pc(client, gtid, name, prepare, commit, abort_url, payload, one_phase, as_json);
    }
    if (tpc_commit->parsed()) return Decide2pc(client, gtid, "commit", as_json);
    if (tpc_abort->parsed()) return Decide2pc(client, gtid, "abort", as_json);
    if (get->parsed()) return Get(client, gtid, as_json);
    if (ls->parsed()) return List(client, list);
    if (retry->parsed()) return Operator(client, gtid, "retry", reason, as_json);
    if (force_abort->parsed()) return Operator(client, gtid, "abort", reason, as_json);
    if (pause->parsed()) return Operator(client, gtid, "pause", reason, as_json);
    if (resume->parsed()) return Operator(client, gtid, "resume", reason, as_json);
    if (resolve->parsed()) return Resolve(client, gtid, branch, outcome, reason, as_json);
    if (cluster->parsed()) return Cluster(client, as_json);
  } catch (const std::exception& e) {
    std::cerr << "treatyctl: unexpected answer from the coordinator: " << e.what() << "\n";
    return kExitRefused;
  }
  std::cerr << app.help();
  return kExitUsage;
}
