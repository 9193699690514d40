// The README's 2PC walk-through ("Two-phase commit (and TCC)") runs as
// written. At test time the fenced ```sh blocks of that section are read
// from README.md and run, in order, by /bin/sh against a real treatyd
// (embedded SQLite, temp folder), the real bank_service example and a
// throwaway PostgreSQL that allows prepared transactions.
//
// The only changes made to the README's text (documented there too): the
// ports 7480 (treatyd), 7601 and 7602 (the banks) become free ports. The
// script runs in a temp folder where `build` points at this build tree, with
// PGHOST/PGPORT/PGUSER naming the throwaway PostgreSQL, as a reader's shell
// would have them.
//
// What is checked comes from the README's own comments:
//   curl -s .../v1/transactions/<gtid>   # "state":"<STATE>"   -> final state of <gtid>
//   psql -At -d <db> -c '<query>'        # <rows>              -> <query>'s last stated rows
// The section must state at least one COMMITTED and one ABORTED outcome;
// every transaction the section begins must finish, and no prepared
// PostgreSQL transaction may be left behind.

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "support/mini_postgres.h"
#include "support/subprocess.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

using namespace std::chrono_literals;

std::string SourceDir() {
  const char* env = std::getenv("TREATY_SOURCE_DIR");
  return env && *env ? env : TREATY_SOURCE_DIR_DEFAULT;
}

// The fenced ```sh blocks of the README section titled `title`, in order.
std::vector<std::string> ShellBlocksOfSection(const std::string& readme, const std::string& title) {
  std::istringstream in(readme);
  std::vector<std::string> blocks;
  bool in_section = false, in_block = false;
  std::string block;
  for (std::string line; std::getline(in, line);) {
    if (!in_block && line.rfind("## ", 0) == 0) in_section = line == "## " + title;
    if (!in_section) continue;
    if (!in_block && line == "```sh") {
      in_block = true;
      block.clear();
    } else if (in_block && line.rfind("```", 0) == 0) {
      in_block = false;
      blocks.push_back(block);
    } else if (in_block) {
      block += line + "\n";
    }
  }
  return blocks;
}

std::string ReplacePort(std::string text, int from, int to) {
  return std::regex_replace(text, std::regex("\\b" + std::to_string(from) + "\\b"),
                            std::to_string(to));
}

std::string Squash(const std::string& text) {  // whitespace runs -> one space, trimmed
  std::istringstream in(text);
  std::string out, word;
  while (in >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

std::string StateOf(const std::string& coordinator, const std::string& gtid) {
  auto r = HttpFetch("GET", coordinator + "/v1/transactions/" + gtid, "", {}, 5000);
  if (!r.ok() || r->status != 200) return "";
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_object() && j.contains("state") && j["state"].is_string()
             ? j["state"].get<std::string>()
             : "";
}

// Stops a process group (SIGTERM, then SIGKILL after 10 s) when it goes out of scope.
struct ProcessGroupStopper {
  pid_t group;
  ~ProcessGroupStopper() { Stop(); }
  void Stop() {
    if (group <= 0) return;
    kill(-group, SIGTERM);
    for (auto end = std::chrono::steady_clock::now() + 10s;
         std::chrono::steady_clock::now() < end && !(kill(-group, 0) != 0 && errno == ESRCH);)
      std::this_thread::sleep_for(50ms);
    kill(-group, SIGKILL);
    group = 0;
  }
};

bool Finished(const std::string& state) {
  return state == "COMMITTED" || state == "ABORTED" || state == "COMPENSATED";
}

TEST(ReadmeTwoPhaseWalkthroughTest, RunsAsWritten) {
  std::ifstream file(SourceDir() + "/README.md");
  ASSERT_TRUE(file) << "README.md not found under " << SourceDir();
  const std::string readme((std::istreambuf_iterator<char>(file)), {});
  const auto blocks = ShellBlocksOfSection(readme, "Two-phase commit (and TCC)");
  ASSERT_FALSE(blocks.empty()) << "no ```sh block in the README's 2PC section";
  std::string script;
  for (const auto& b : blocks) script += b;

  // What the README says the outcome is.
  std::map<std::string, std::string> expected_state;                         // gtid -> state
  std::map<std::pair<std::string, std::string>, std::string> expected_rows;  // (db, sql) -> rows
  const std::regex state_line(R"(/v1/transactions/([A-Za-z0-9_.-]+)\s+#\s*"state":"([A-Z]+)\")");
  const std::regex psql_line(R"(psql -At -d (\w+) -c '([^']+)'\s+#\s*(.+))");
  std::set<std::string> begun;
  const std::regex begin_line(R"(/v1/2pc (?:-H '[^']*' )?-d '\{"gtid":"([A-Za-z0-9_.-]+)\")");
  {
    std::istringstream in(script);
    std::smatch m;
    for (std::string line; std::getline(in, line);) {
      if (std::regex_search(line, m, state_line)) expected_state[m[1]] = m[2];
      if (std::regex_search(line, m, psql_line)) expected_rows[{m[1], m[2]}] = Squash(m[3]);
      if (std::regex_search(line, m, begin_line)) begun.insert(m[1]);
    }
  }
  std::set<std::string> stated;
  for (const auto& [gtid, state] : expected_state) stated.insert(state);
  ASSERT_TRUE(stated.count("COMMITTED") && stated.count("ABORTED"))
      << "the 2PC section must show a transfer that commits and one that aborts, each with a "
         "`curl .../v1/transactions/<gtid>   # \"state\":\"...\"` line; it has:\n"
      << script;
  ASSERT_FALSE(expected_rows.empty()) << "the 2PC section shows no balances (psql lines)";

  MiniPostgres pg;
  ASSERT_TRUE(pg.Start().ok());
  const std::string dir = MakeTempDir("treaty-readme-2pc");
  TreatydOptions options;
  options.store = "sqlite:" + dir + "/treaty.db";
  TreatydProcess treatyd(dir, "treatyd", options);
  ASSERT_TRUE(treatyd.Start().ok()) << treatyd.Log();
  const int treatyd_port = std::stoi(treatyd.url().substr(treatyd.url().rfind(':') + 1));
  const int port_a = FreePort();
  int port_b = FreePort();
  while (port_b == port_a) port_b = FreePort();

  script =
      ReplacePort(ReplacePort(ReplacePort(script, 7480, treatyd_port), 7601, port_a), 7602, port_b);
  std::error_code ec;
  std::filesystem::create_directory_symlink(TREATY_BUILD_DIR, dir + "/build", ec);
  ASSERT_FALSE(ec) << ec.message();
  const std::string script_path = dir + "/walkthrough.sh";
  {
    std::ofstream out(script_path);
    out << "cd '" << dir << "'\n"
        << "export PGHOST=127.0.0.1 PGPORT=" << pg.port() << " PGUSER=postgres\n"
        << script;
  }
  Subprocess shell({"/bin/sh", script_path}, dir + "/walkthrough.log");
  ASSERT_TRUE(shell.Start().ok());
  // Subprocess puts the shell in its own process group; the banks the
  // walk-through starts in the background stay in it. Stopped on every exit.
  ProcessGroupStopper stop_banks{shell.pid()};
  const int rc = shell.Wait(180000);
  const std::string log = shell.Log();
  EXPECT_EQ(rc, 0) << "the walk-through did not finish; its output:\n" << log;
  std::cout << "--- the walk-through's output\n" << log << "---\n";

  // Every transaction it began finishes, in the state the README says.
  for (const auto& gtid : begun) {
    std::string state;
    for (auto end = std::chrono::steady_clock::now() + 30s;
         std::chrono::steady_clock::now() < end && !Finished(state = StateOf(treatyd.url(), gtid));)
      std::this_thread::sleep_for(200ms);
    EXPECT_TRUE(Finished(state)) << gtid << " is " << state << "\n" << log;
    if (expected_state.count(gtid)) EXPECT_EQ(state, expected_state[gtid]) << gtid << "\n" << log;
  }
  for (const auto& [gtid, state] : expected_state) {
    EXPECT_TRUE(begun.count(gtid)) << "the README shows " << gtid << " but never begins it";
  }

  // Balances as the README states them (its last statement per query), and
  // nothing left prepared.
  for (const auto& [where, rows] : expected_rows) {
    auto got = pg.Query(where.second, where.first);
    ASSERT_TRUE(got.ok()) << got.status().message() << "\n" << log;
    EXPECT_EQ(Squash(*got), rows) << where.first << ": " << where.second << "\n" << log;
    auto prepared = pg.Query(
        "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()", where.first);
    ASSERT_TRUE(prepared.ok());
    EXPECT_EQ(Squash(*prepared), "0") << where.first;
  }

  stop_banks.Stop();
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace treaty::testing
