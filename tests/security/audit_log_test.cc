// AuditLog: one valid JSON object per record and per line, whatever the
// strings hold; mode 0600; reopen after rotation (and a failed reopen keeps
// writing to the old file); the "audit:" line of the main log.

#include "security/audit_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "support/subprocess.h"

namespace treaty {
namespace {

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

AuditRecord Sample(const std::string& gtid) {
  AuditRecord r;
  r.actor = "ops-alice";
  r.method = "token";
  r.peer = "127.0.0.1:50000";
  r.action = "abort";
  r.gtid = gtid;
  r.branch = "b1";
  r.detail = "";
  r.reason = "stuck since Monday";
  r.result = 202;
  return r;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("treaty-audit");
    ASSERT_FALSE(dir_.empty());
    path_ = dir_ + "/audit.log";
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::string path_;
};

TEST_F(AuditLogTest, OneJsonObjectPerRecordWithEveryField) {
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  (*log)->Record(Sample("g1"));
  (*log)->Record(Sample("g2"));
  auto lines = Lines(path_);
  ASSERT_EQ(lines.size(), 2u);
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["actor"], "ops-alice");
  EXPECT_EQ(j["method"], "token");
  EXPECT_EQ(j["peer"], "127.0.0.1:50000");
  EXPECT_EQ(j["action"], "abort");
  EXPECT_EQ(j["gtid"], "g1");
  EXPECT_EQ(j["branch"], "b1");
  EXPECT_EQ(j["detail"], "");
  EXPECT_EQ(j["reason"], "stuck since Monday");
  EXPECT_EQ(j["result"], 202);
  ASSERT_TRUE(j["ts"].is_string());
  EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << j["ts"];
  EXPECT_EQ(nlohmann::json::parse(lines[1])["gtid"], "g2");

  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AuditLogTest, HostileStringsCannotBreakOrForgeLines) {
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  AuditRecord r = Sample("g1");
  r.reason = "ok\n{\"actor\":\"admin\",\"action\":\"drain\"}\r\x1b[2J";
  r.actor = "bad\xff\xfeutf8";
  r.detail = "rtl \xe2\x80\xae override";
  r.gtid = std::string("nul\0byte", 8);
  (*log)->Record(r);
  (*log)->Record(Sample("g2"));
  auto lines = Lines(path_);
  ASSERT_EQ(lines.size(), 2u) << "one line per record";
  std::ifstream f(path_, std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(raw.find('\x1b'), std::string::npos);
  EXPECT_EQ(raw.find('\r'), std::string::npos);
  EXPECT_EQ(raw.find('\0'), std::string::npos);
  EXPECT_EQ(raw.find("\xe2\x80\xae"), std::string::npos) << "bidi override escaped";
  for (char c : raw) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << "ASCII only";
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["reason"], "ok\n{\"actor\":\"admin\",\"action\":\"drain\"}\r\x1b[2J")
      << "the value survives, escaped";
  EXPECT_EQ(j["detail"], "rtl \xe2\x80\xae override");
  EXPECT_EQ(j["actor"].get<std::string>().find("\xff"), std::string::npos)
      << "invalid UTF-8 replaced";
  EXPECT_EQ(nlohmann::json::parse(lines[1])["gtid"], "g2");
}

// A caller cannot flood the logs: reason and detail keep 1024 bytes, the
// other strings 256, cut on a UTF-8 boundary with a marker; the file and the
// main log get the same bounded record.
TEST_F(AuditLogTest, LongStringsAreCutWithAMarker) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  sink->set_pattern("%v");
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("audit-test", sink));
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  AuditRecord r = Sample("g1");
  r.reason = std::string(900 * 1024, 'r');
  std::string accents;
  for (int i = 0; i < 1000; ++i) accents += "\xc3\xa9";  // é, two bytes each
  r.detail = accents;
  r.gtid = std::string(5000, 'g');
  r.peer = "x" + accents;
  (*log)->Record(r);
  spdlog::set_default_logger(previous);

  auto lines = Lines(path_);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_LT(lines[0].size(), 16u * 1024) << "the line is bounded";
  auto j = nlohmann::json::parse(lines[0]);
  const std::string reason = j["reason"];
  EXPECT_LE(reason.size(), 1024u);
  EXPECT_GT(reason.size(), 900u);
  EXPECT_TRUE(reason.starts_with("rrrr"));
  EXPECT_TRUE(reason.ends_with("(cut from 921600 bytes)")) << reason.substr(reason.size() - 40);
  const std::string gtid = j["gtid"];
  EXPECT_LE(gtid.size(), 256u);
  EXPECT_TRUE(gtid.ends_with("(cut from 5000 bytes)")) << gtid;
  for (const std::string field : {"detail", "peer"}) {
    const std::string value = j[field];
    EXPECT_LE(value.size(), field == "detail" ? 1024u : 256u) << field;
    EXPECT_TRUE(value.ends_with("(cut from 2000 bytes)") ||
                value.ends_with("(cut from 2001 bytes)"))
        << field;
    EXPECT_EQ(value.find("\xef\xbf\xbd"), std::string::npos)
        << field << ": cut inside a character (U+FFFD)";
  }
  EXPECT_EQ(j["actor"], "ops-alice") << "short strings stay whole";
  const std::string main_log = captured.str();
  EXPECT_LT(main_log.size(), 16u * 1024);
  EXPECT_NE(main_log.find("(cut from 921600 bytes)"), std::string::npos);
}

TEST_F(AuditLogTest, ReopenAfterRotationWritesToTheNewFile) {
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  (*log)->Record(Sample("before"));
  ASSERT_EQ(::rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  (*log)->Record(Sample("rotated-not-reopened"));
  ASSERT_TRUE((*log)->Reopen().ok());
  (*log)->Record(Sample("after"));
  auto old_lines = Lines(path_ + ".1");
  ASSERT_EQ(old_lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(old_lines[1])["gtid"], "rotated-not-reopened");
  auto new_lines = Lines(path_);
  ASSERT_EQ(new_lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(new_lines[0])["gtid"], "after");
}

TEST_F(AuditLogTest, FailedReopenKeepsTheOldFile) {
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(::rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  ASSERT_EQ(::mkdir(path_.c_str(), 0700), 0) << "a directory where the file was";
  Status s = (*log)->Reopen();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--audit-log"), std::string::npos);
  (*log)->Record(Sample("still-written"));
  auto lines = Lines(path_ + ".1");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["gtid"], "still-written");
}

TEST_F(AuditLogTest, OpenFailsNamingTheOption) {
  auto log = AuditLog::Open(dir_ + "/no-such-dir/audit.log");
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(log.status().message().find("--audit-log"), std::string::npos);
}

TEST_F(AuditLogTest, MainLogGetsAnAuditLineWithOrWithoutAFile) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("audit-test", sink));
  sink->set_pattern("%v");
  auto log = AuditLog::Open("");
  ASSERT_TRUE(log.ok());
  AuditRecord r = Sample("g1");
  r.reason = "line\nbreak";
  (*log)->Record(r);
  spdlog::set_default_logger(previous);
  std::string text = captured.str();
  ASSERT_TRUE(text.starts_with("audit: {")) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  auto j = nlohmann::json::parse(text.substr(7));
  EXPECT_EQ(j["gtid"], "g1");
  EXPECT_EQ(j["reason"], "line\nbreak");
}

}  // namespace
}  // namespace treaty
