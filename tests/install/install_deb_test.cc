// `cpack -G DEB` on the built tree: the two Debian packages, treatyd and
// libtreaty-dev, their files, control fields (Depends computed by
// dpkg-shlibdeps, conffiles, postinst) and a treatyd taken out of its
// package that runs.

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "install/install_env.h"
#include "support/subprocess.h"

namespace treaty::testing {
namespace {

namespace fs = std::filesystem;

class DebPackageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = MakeTempDir("treaty-deb");
    cpack_ = RunTool({BuildTree::Cpack(), "-G", "DEB", "--config",
                      BuildTree::BinaryDir() + "/CPackConfig.cmake", "-B", dir_ + "/out"},
                     dir_ + "/cpack.log", 240000);
    if (!fs::is_directory(dir_ + "/out")) return;
    for (const auto& entry : fs::directory_iterator(dir_ + "/out")) {
      const std::string name = entry.path().filename().string();
      if (entry.path().extension() != ".deb") continue;
      debs_.insert(name);
      if (name.rfind("treatyd_", 0) == 0) server_deb_ = entry.path().string();
      if (name.rfind("libtreaty-dev_", 0) == 0) sdk_deb_ = entry.path().string();
    }
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  void SetUp() override {
    ASSERT_TRUE(cpack_.ok()) << cpack_.output;
    ASSERT_FALSE(server_deb_.empty()) << cpack_.output;
    ASSERT_FALSE(sdk_deb_.empty()) << cpack_.output;
  }

  // The paths `dpkg-deb -c` lists ("./usr/bin/treatyd"; a symlink without
  // its " -> target").
  static std::set<std::string> Contents(const std::string& deb) {
    ToolRun list = RunTool({BuildTree::DpkgDeb(), "-c", deb}, dir_ + "/contents.log");
    EXPECT_TRUE(list.ok()) << list.output;
    std::set<std::string> paths;
    std::istringstream lines(list.output);
    for (std::string line; std::getline(lines, line);) {
      auto words = Words(line);
      if (words.size() >= 6) paths.insert(words[5]);
    }
    return paths;
  }
  // `dpkg-deb -I`: the control fields and the control archive's members.
  static std::string Info(const std::string& deb) {
    ToolRun info = RunTool({BuildTree::DpkgDeb(), "-I", deb}, dir_ + "/info.log");
    EXPECT_TRUE(info.ok()) << info.output;
    return info.output;
  }
  // One control field's value ("" when absent).
  static std::string Field(const std::string& info, const std::string& name) {
    std::istringstream lines(info);
    for (std::string line; std::getline(lines, line);) {
      const std::string key = " " + name + ": ";
      if (line.rfind(key, 0) == 0) return line.substr(key.size());
    }
    return "";
  }
  // Unpacks `deb` into a fresh folder; returns it.
  static std::string Extract(const std::string& deb, const std::string& name) {
    const std::string root = dir_ + "/" + name;
    ToolRun x = RunTool({BuildTree::DpkgDeb(), "-x", deb, root}, dir_ + "/extract.log");
    EXPECT_TRUE(x.ok()) << x.output;
    ToolRun e = RunTool({BuildTree::DpkgDeb(), "-e", deb, root + "/DEBIAN"}, dir_ + "/extract.log");
    EXPECT_TRUE(e.ok()) << e.output;
    return root;
  }

  static inline std::string dir_, server_deb_, sdk_deb_;
  static inline std::set<std::string> debs_;
  static inline ToolRun cpack_;
};

TEST_F(DebPackageTest, CpackMakesExactlyTheTwoPackages) {
  EXPECT_EQ(debs_.size(), 2u);
  EXPECT_EQ(
      fs::path(server_deb_).filename().string().rfind("treatyd_" + BuildTree::Version() + "-1_", 0),
      0u)
      << server_deb_;
  EXPECT_EQ(fs::path(sdk_deb_).filename().string().rfind(
                "libtreaty-dev_" + BuildTree::Version() + "-1_", 0),
            0u)
      << sdk_deb_;
}

TEST_F(DebPackageTest, TreatydPackageHoldsTheServerAndItsDependencies) {
  const auto files = Contents(server_deb_);
  EXPECT_EQ(files.count("./usr/bin/treatyd"), 1u);
  EXPECT_EQ(files.count("./usr/bin/treatyctl"), 1u);
  const bool has_unit = fs::exists(BuildTree::SourceDir() + "/deploy/systemd/treatyd.service");
  const bool has_conf = fs::exists(BuildTree::SourceDir() + "/deploy/config/treatyd.conf");
  if (has_unit) {
    EXPECT_EQ(files.count("./usr/lib/systemd/system/treatyd.service"), 1u);
  }
  if (has_conf) {
    EXPECT_EQ(files.count("./etc/treaty/treatyd.conf"), 1u);
  }
  if (fs::exists(BuildTree::SourceDir() + "/deploy/systemd/treaty.sysusers")) {
    EXPECT_EQ(files.count("./usr/lib/sysusers.d/treaty.conf"), 1u);
  }
  for (const auto& f : files) {
    EXPECT_EQ(f.find("include/"), std::string::npos) << "SDK file in treatyd: " << f;
    EXPECT_EQ(f.find("libtreaty"), std::string::npos) << "SDK file in treatyd: " << f;
  }

  const std::string info = Info(server_deb_);
  EXPECT_EQ(Field(info, "Package"), "treatyd");
  EXPECT_EQ(Field(info, "Version"), BuildTree::Version() + "-1");
  EXPECT_FALSE(Field(info, "Maintainer").empty());
  EXPECT_FALSE(Field(info, "Description").empty());
  // Computed by dpkg-shlibdeps from the binaries, plus adduser (postinst).
  const std::string depends = Field(info, "Depends");
  for (const char* dep : {"adduser", "libc6", "libstdc++6", "libssl3", "libpqxx-6.4",
                          "libsqlite3-0", "libthrift-0.17.0"}) {
    EXPECT_NE(depends.find(dep), std::string::npos) << dep << " missing from: " << depends;
  }

  const std::string root = Extract(server_deb_, "treatyd-root");
  const std::string postinst = ReadFile(root + "/DEBIAN/postinst");
  EXPECT_NE(postinst.find("systemd-sysusers treaty.conf"), std::string::npos) << postinst;
  EXPECT_NE(postinst.find("adduser --system"), std::string::npos) << postinst;
  EXPECT_TRUE((fs::status(root + "/DEBIAN/postinst").permissions() & fs::perms::owner_exec) !=
              fs::perms::none);
  if (has_conf) {
    EXPECT_EQ(ReadFile(root + "/DEBIAN/conffiles"), "/etc/treaty/treatyd.conf\n");
  }
}

TEST_F(DebPackageTest, LibtreatyDevPackageHoldsTheSdk) {
  const auto files = Contents(sdk_deb_);
  const std::string lib = "./usr/lib/";
  for (const std::string& f :
       {lib + "libtreaty.so." + BuildTree::Version(), lib + "libtreaty.so.0", lib + "libtreaty.so",
        lib + "cmake/Treaty/TreatyConfig.cmake", lib + "cmake/Treaty/TreatyConfigVersion.cmake",
        lib + "cmake/Treaty/TreatyTargets.cmake", lib + "pkgconfig/treaty.pc"}) {
    EXPECT_EQ(files.count(f), 1u) << f;
  }
  for (const auto& h :
       fs::directory_iterator(BuildTree::SourceDir() + "/participant-sdk/include/treaty")) {
    EXPECT_EQ(files.count("./usr/include/treaty/" + h.path().filename().string()), 1u) << h.path();
  }
  for (const auto& f : files) EXPECT_EQ(f.find("/bin/"), std::string::npos) << f;

  const std::string info = Info(sdk_deb_);
  EXPECT_EQ(Field(info, "Package"), "libtreaty-dev");
  EXPECT_EQ(Field(info, "Section"), "libdevel");
  const std::string depends = Field(info, "Depends");
  for (const char* dep : {"libc6", "libstdc++6", "libssl3", "libpqxx-6.4", "libthrift-0.17.0"}) {
    EXPECT_NE(depends.find(dep), std::string::npos) << dep << " missing from: " << depends;
  }

  const std::string root = Extract(sdk_deb_, "sdk-root");
  // The pkg-config file names where the package puts the SDK.
  const std::string pc = ReadFile(root + "/usr/lib/pkgconfig/treaty.pc");
  EXPECT_NE(pc.find("prefix=/usr\n"), std::string::npos) << pc;
  EXPECT_NE(ReadFile(root + "/DEBIAN/shlibs").find("libtreaty 0 libtreaty-dev"), std::string::npos);
  ToolRun dynamic = RunTool({BuildTree::Readelf(), "-d", root + "/usr/lib/libtreaty.so.0"},
                            dir_ + "/readelf.log");
  EXPECT_NE(dynamic.output.find("Library soname: [libtreaty.so.0]"), std::string::npos)
      << dynamic.output;
}

TEST_F(DebPackageTest, ProgramsFromThePackageRun) {
  const std::string root = Extract(server_deb_, "run-root");
  for (const char* program : {"treatyd", "treatyctl"}) {
    ToolRun version = RunTool({root + "/usr/bin/" + program, "--version"},
                              dir_ + "/" + program + "-version.log", 30000);
    EXPECT_TRUE(version.ok()) << version.output;
    EXPECT_EQ(version.output.rfind(std::string(program) + " " + BuildTree::Version(), 0), 0u)
        << version.output;
  }
}

}  // namespace
}  // namespace treaty::testing
