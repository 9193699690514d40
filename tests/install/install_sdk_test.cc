// `cmake --install` as a user of the SDK sees it. The build is installed
// into a temporary prefix; the example participant (examples/out-of-tree/)
// is compiled outside the tree against that prefix alone, once through
// find_package(Treaty) and once with a plain compiler command line from
// `pkg-config --cflags --libs treaty`; each program then runs against the
// installed treatyd (SQLite log) and must see one saga commit and one
// compensated. Also: the installed layout, and what libtreaty.so exports.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "install/install_env.h"
#include "support/subprocess.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

namespace fs = std::filesystem;

class InstallTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = MakeTempDir("treaty-install");
    prefix_ = dir_ + "/prefix";
    install_ =
        RunTool({BuildTree::Cmake(), "--install", BuildTree::BinaryDir(), "--prefix", prefix_},
                dir_ + "/install.log");
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  void SetUp() override { ASSERT_TRUE(install_.ok()) << install_.output; }

  static std::string Lib(const std::string& name) {
    return prefix_ + "/" + BuildTree::LibDir() + "/" + name;
  }

  // Where the dynamic loader finds libtreaty.so.0 for `program` (ldd).
  static std::string LoadedLibtreaty(const std::string& program) {
    ToolRun ldd = RunTool({BuildTree::Ldd(), program}, dir_ + "/ldd.log");
    std::istringstream lines(ldd.output);
    for (std::string line; std::getline(lines, line);) {
      auto words = Words(line);
      if (words.size() >= 3 && words[0] == "libtreaty.so.0" && words[1] == "=>") return words[2];
    }
    return "(not found in: " + ldd.output + ")";
  }

  // Starts the installed treatyd and runs `program` against it.
  static void RunsASagaAgainstInstalledTreatyd(const std::string& program,
                                               const std::string& name) {
    // TreatydProcess starts $TREATY_BIN_DIR/treatyd: the installed one.
    setenv("TREATY_BIN_DIR", (prefix_ + "/bin").c_str(), 1);
    TreatydOptions options;
    options.store = "sqlite:" + dir_ + "/" + name + ".db";
    options.thrift = "off";
    TreatydProcess treatyd(dir_, name + "-treatyd", options);
    ASSERT_TRUE(treatyd.Start().ok()) << treatyd.Log();
    ToolRun run =
        RunTool({program, "--coordinator", treatyd.url()}, dir_ + "/" + name + ".log", 60000);
    EXPECT_TRUE(run.ok()) << run.output << "\n--- treatyd\n" << treatyd.Log();
    EXPECT_NE(run.output.find(": COMMITTED"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find(": ABORTED"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("both sagas ended as expected"), std::string::npos) << run.output;
  }

  static inline std::string dir_, prefix_;
  static inline ToolRun install_;
};

TEST_F(InstallTest, LayoutHasProgramsSharedLibraryHeadersAndPackageFiles) {
  EXPECT_TRUE(fs::is_regular_file(prefix_ + "/bin/treatyd"));
  EXPECT_TRUE(fs::is_regular_file(prefix_ + "/bin/treatyctl"));

  const std::string real = "libtreaty.so." + BuildTree::Version();
  EXPECT_TRUE(fs::is_regular_file(Lib(real)));
  ASSERT_TRUE(fs::is_symlink(Lib("libtreaty.so.0")));
  EXPECT_EQ(fs::read_symlink(Lib("libtreaty.so.0")).string(), real);
  ASSERT_TRUE(fs::is_symlink(Lib("libtreaty.so")));
  EXPECT_EQ(fs::read_symlink(Lib("libtreaty.so")).string(), "libtreaty.so.0");
  for (const auto& entry : fs::directory_iterator(prefix_ + "/" + BuildTree::LibDir())) {
    EXPECT_NE(entry.path().extension(), ".a") << "static archive installed: " << entry.path();
  }

  // Exactly the public headers: none of participant-sdk/src's.
  std::set<std::string> expected, installed;
  for (const auto& h :
       fs::directory_iterator(BuildTree::SourceDir() + "/participant-sdk/include/treaty")) {
    expected.insert(h.path().filename().string());
  }
  expected.insert("status.h");  // the base library's Status (coordinator/common/include)
  for (const auto& h : fs::directory_iterator(prefix_ + "/include/treaty")) {
    installed.insert(h.path().filename().string());
  }
  EXPECT_EQ(installed, expected);

  for (const char* file :
       {"TreatyConfig.cmake", "TreatyConfigVersion.cmake", "TreatyTargets.cmake"}) {
    EXPECT_TRUE(fs::is_regular_file(Lib(std::string("cmake/Treaty/") + file))) << file;
  }
  const std::string pc = ReadFile(Lib("pkgconfig/treaty.pc"));
  EXPECT_NE(pc.find("prefix=" + prefix_ + "\n"), std::string::npos) << pc;
  EXPECT_NE(pc.find("Version: " + BuildTree::Version() + "\n"), std::string::npos) << pc;
  EXPECT_FALSE(fs::exists(Lib("pkgconfig/treaty.pc.draft")));

  if (fs::exists(BuildTree::SourceDir() + "/deploy/systemd/treatyd.service")) {
    EXPECT_TRUE(fs::is_regular_file(prefix_ + "/lib/systemd/system/treatyd.service"));
  }
  if (fs::exists(BuildTree::SourceDir() + "/deploy/systemd/treaty.sysusers")) {
    EXPECT_TRUE(fs::is_regular_file(prefix_ + "/lib/sysusers.d/treaty.conf"));
  }
  if (fs::exists(BuildTree::SourceDir() + "/deploy/config/treatyd.conf")) {
    // Not /usr: the configuration stays under the prefix.
    EXPECT_TRUE(fs::is_regular_file(prefix_ + "/etc/treaty/treatyd.conf"));
  }
}

TEST_F(InstallTest, SharedLibraryHasSonameAndExportsOnlyTheSdkApi) {
  const std::string lib = Lib("libtreaty.so.0");
  ToolRun dynamic = RunTool({BuildTree::Readelf(), "-d", lib}, dir_ + "/readelf.log");
  ASSERT_TRUE(dynamic.ok()) << dynamic.output;
  EXPECT_NE(dynamic.output.find("Library soname: [libtreaty.so.0]"), std::string::npos);

  ToolRun nm = RunTool({BuildTree::Nm(), "-D", "-C", "--defined-only", lib}, dir_ + "/nm.log");
  ASSERT_TRUE(nm.ok()) << nm.output;
  const std::vector<std::string> kSdk = {
      "treaty::sdk::", "typeinfo for treaty::sdk::", "typeinfo name for treaty::sdk::",
      "vtable for treaty::sdk::", "non-virtual thunk to treaty::sdk::",
      "virtual thunk to treaty::sdk::",
      // The base library's one Status (treaty/status.h).
      "treaty::Status::", "treaty::StatusCodeName(", "treaty::ErrorCodeName(",
      "treaty::ErrorCodeFromName("};
  // Internal libraries and helpers: never named by an exported symbol, but
  // for members of a public class's private Impl (see participant-sdk/treaty.map).
  const std::vector<std::string> kInternal = {
      "pqxx::", "apache::thrift",   "boost::", "nlohmann", "spdlog", "treaty_sdk_detail",
      "PgPool", "PgConnectionPool", "PgError", "Migrat"};
  std::set<std::string> exported;
  std::istringstream lines(nm.output);
  for (std::string line; std::getline(lines, line);) {
    // "ADDRESS TYPE NAME@@TREATY_0"
    if (line.size() < 20) continue;
    std::string name = line.substr(line.find(' ', line.find(' ') + 1) + 1);
    if (name == "TREATY_0") continue;
    const auto at = name.find('@');
    EXPECT_NE(at, std::string::npos) << "unversioned: " << name;
    EXPECT_EQ(name.substr(at == std::string::npos ? name.size() : at), "@@TREATY_0") << name;
    name = name.substr(0, at);
    bool sdk = false;
    for (const auto& p : kSdk) sdk = sdk || name.rfind(p, 0) == 0;
    EXPECT_TRUE(sdk) << "exported outside the SDK's API: " << name;
    if (name.find("::Impl") == std::string::npos) {
      for (const auto& internal : kInternal) {
        EXPECT_EQ(name.find(internal), std::string::npos) << "internal name exported: " << name;
      }
    }
    exported.insert(name);
  }
  EXPECT_GT(exported.size(), 40u);
  for (const char* api :
       {"treaty::sdk::Client::SubmitSaga(treaty::sdk::SagaSpec const&, bool, int)",
        "treaty::sdk::ParticipantServer::Start()", "treaty::StatusCodeName(treaty::StatusCode)",
        "treaty::Status::ToString[abi:cxx11]() const",
        "typeinfo for treaty::sdk::ResourceManager"}) {
    EXPECT_EQ(exported.count(api), 1u) << "not exported: " << api;
  }
}

TEST_F(InstallTest, FindPackageBuildOfTheExampleRunsASaga) {
  const std::string build = dir_ + "/cmake-build";
  ToolRun configure =
      RunTool({BuildTree::Cmake(), "-S", BuildTree::SourceDir() + "/examples/out-of-tree", "-B",
               build, "-DCMAKE_PREFIX_PATH=" + prefix_, "-DCMAKE_CXX_COMPILER=" + BuildTree::Cxx()},
              dir_ + "/cmake-configure.log");
  ASSERT_TRUE(configure.ok()) << configure.output;
  ToolRun compile = RunTool({BuildTree::Cmake(), "--build", build}, dir_ + "/cmake-build.log");
  ASSERT_TRUE(compile.ok()) << compile.output;

  const std::string program = build + "/ticket_office";
  EXPECT_EQ(LoadedLibtreaty(program), Lib("libtreaty.so.0"));
  RunsASagaAgainstInstalledTreatyd(program, "cmake-route");
}

TEST_F(InstallTest, PkgConfigBuildOfTheExampleRunsASaga) {
  setenv("PKG_CONFIG_PATH", Lib("pkgconfig").c_str(), 1);
  ToolRun flags =
      RunTool({BuildTree::PkgConfig(), "--cflags", "--libs", "treaty"}, dir_ + "/pkg-config.log");
  ASSERT_TRUE(flags.ok()) << flags.output;
  ToolRun libdir = RunTool({BuildTree::PkgConfig(), "--variable=libdir", "treaty"},
                           dir_ + "/pkg-config-libdir.log");
  ASSERT_TRUE(libdir.ok()) << libdir.output;
  ASSERT_EQ(Words(libdir.output).size(), 1u) << libdir.output;

  const std::string program = dir_ + "/ticket_office";
  std::vector<std::string> argv = {
      BuildTree::Cxx(), "-std=c++20", "-o", program,
      BuildTree::SourceDir() + "/examples/out-of-tree/ticket_office.cc"};
  for (const auto& word : Words(flags.output)) argv.push_back(word);
  // Not a system directory: the program must be told where libtreaty is.
  argv.push_back("-Wl,-rpath," + Words(libdir.output)[0]);
  ToolRun compile = RunTool(argv, dir_ + "/gxx.log");
  ASSERT_TRUE(compile.ok()) << CommandLine(argv) << "\n" << compile.output;

  EXPECT_EQ(LoadedLibtreaty(program), Lib("libtreaty.so.0"));
  RunsASagaAgainstInstalledTreatyd(program, "pkg-config-route");
}

}  // namespace
}  // namespace treaty::testing
