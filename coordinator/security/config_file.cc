#include "security/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <optional>

#include "common/text.h"

namespace treaty {

namespace {

// Closes a descriptor at scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status Refused(std::string_view option, const std::string& path, const std::string& why) {
  return Status::InvalidArgument(std::string(option) + ": cannot read '" + path + "': " + why);
}

// Opens `path` for reading without blocking on a FIFO and checks that it is
// a regular file; `st` gets its status.
Result<int> OpenRegular(std::string_view option, const std::string& path, struct stat* st) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Refused(option, path, strerror(errno));
  if (::fstat(fd, st) != 0) {
    const int err = errno;
    ::close(fd);
    return Refused(option, path, strerror(err));
  }
  if (!S_ISREG(st->st_mode)) {
    ::close(fd);
    return Refused(
        option, path,
        S_ISDIR(st->st_mode) ? "it is a directory, not a file" : "it is not a regular file");
  }
  return fd;
}

}  // namespace

Status CheckRegularFile(std::string_view option, const std::string& path) {
  struct stat st {};
  auto fd = OpenRegular(option, path, &st);
  if (!fd.ok()) return fd.status();
  ::close(*fd);
  return Status::Ok();
}

Result<ConfigFile> ReadConfigFile(std::string_view option, const std::string& path,
                                  size_t max_bytes) {
  struct stat st {};
  auto opened = OpenRegular(option, path, &st);
  if (!opened.ok()) return opened.status();
  Fd fd(*opened);
  auto too_large = [&] {
    return Refused(option, path, "the file is larger than " + std::to_string(max_bytes) + " bytes");
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_large();
  ConfigFile out;
  out.mode = st.st_mode & 07777;
  char buf[8192];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Refused(option, path, strerror(errno));
    }
    if (n == 0) break;
    if (out.text.size() + static_cast<size_t>(n) > max_bytes) return too_large();
    out.text.append(buf, static_cast<size_t>(n));
  }
  return out;
}

namespace {

constexpr const char* kKeysAre =
    " (keys are the long option names of treatyd --help, without the dashes)";

// Text of the file as shown in a message: control characters escaped, cut.
std::string Shown(std::string_view s) { return EscapeControl(Excerpt(s, 80)); }

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

// A value as written: its text (quotes and escapes removed) and whether it
// was quoted ("3" is text, 3 a number).
struct ScannedValue {
  std::string text;
  bool quoted = false;
};

// Reads a config text left to right; `line_` is the 1-based line at `pos_`.
class ConfigScanner {
 public:
  explicit ConfigScanner(std::string_view text) : text_(text) {}

  bool AtEnd() const { return pos_ >= text_.size(); }
  int line() const { return line_; }

  // Skips spaces and tabs (and a '\r' before a newline).
  void SkipBlanks() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || (Peek() == '\r' && Next() == '\n')))
      ++pos_;
  }
  // Past a `# comment` up to (not past) the end of the line.
  void SkipComment() {
    if (AtEnd() || Peek() != '#') return;
    while (!AtEnd() && Peek() != '\n') ++pos_;
  }
  // After blanks and a comment: true and past the newline when the line
  // ends here.
  bool EndOfLine() {
    SkipBlanks();
    SkipComment();
    if (AtEnd()) return true;
    if (Peek() != '\n') return false;
    ++pos_;
    ++line_;
    return true;
  }
  // Skips blanks, comments and newlines (inside a list).
  void SkipSpace() {
    while (true) {
      SkipBlanks();
      SkipComment();
      if (AtEnd() || Peek() != '\n') return;
      ++pos_;
      ++line_;
    }
  }
  // The rest of the current line (for messages), not consumed.
  std::string_view RestOfLine() const {
    std::string_view rest = text_.substr(pos_);
    rest = rest.substr(0, rest.find('\n'));
    if (!rest.empty() && rest.back() == '\r') rest.remove_suffix(1);
    return rest;
  }
  std::string_view Key() {
    const size_t begin = pos_;
    while (!AtEnd() && IsKeyChar(Peek())) ++pos_;
    return text_.substr(begin, pos_ - begin);
  }
  char Peek() const { return text_[pos_]; }
  char Next() const { return pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0'; }
  void Advance() { ++pos_; }

  // One value at `pos_`: quoted, or bare up to one of `stops`, a '#' or
  // the end of the line. Error text (without "line N: ") on failure.
  Result<ScannedValue> Value(std::string_view stops) {
    if (AtEnd()) return ScannedValue{};
    if (Peek() == '"') {
      Result<std::string> quoted = Quoted();
      if (!quoted.ok()) return quoted.status();
      return ScannedValue{std::move(*quoted), true};
    }
    if (Peek() == '\'') {
      const size_t close = text_.find_first_of("'\n", pos_ + 1);
      if (close == std::string_view::npos || text_[close] != '\'')
        return Status::InvalidArgument("a ' is not closed on its line");
      std::string out(text_.substr(pos_ + 1, close - pos_ - 1));
      pos_ = close + 1;
      return ScannedValue{std::move(out), true};
    }
    const size_t begin = pos_;
    while (!AtEnd() && Peek() != '\n' && Peek() != '#' &&
           std::string_view::npos == stops.find(Peek()))
      ++pos_;
    std::string_view bare = text_.substr(begin, pos_ - begin);
    while (!bare.empty() && (bare.back() == ' ' || bare.back() == '\t' || bare.back() == '\r'))
      bare.remove_suffix(1);
    return ScannedValue{std::string(bare), false};
  }

 private:
  Result<std::string> Quoted() {
    std::string out;
    for (++pos_; !AtEnd() && Peek() != '\n'; ++pos_) {
      const char c = Peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      ++pos_;
      const char e = AtEnd() ? '\0' : Peek();
      if (e == '"' || e == '\\') {
        out.push_back(e);
      } else if (e == 't') {
        out.push_back('\t');
      } else {
        return Status::InvalidArgument(
            "unsupported escape in a \"string\" (only \\\" \\\\ \\t; write a backslash as "
            "\\\\, or use a 'single-quoted' string)");
      }
    }
    return Status::InvalidArgument("a \" is not closed on its line");
  }

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
};

Status LineError(int line, const std::string& what) {
  return Status::InvalidArgument("line " + std::to_string(line) + ": " + what);
}

// A control character (C0 but tab, or DEL) in `value`: its escaped form
// ("\x00"), or "" when there is none.
std::string ControlCharIn(std::string_view value) {
  for (char c : value) {
    const unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      return hex;
    }
  }
  return "";
}

bool IsInteger(std::string_view v) {
  if (!v.empty() && v.front() == '-') v.remove_prefix(1);
  if (v.empty() || v.size() > 19) return false;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// "" when the value(s) of a `kind` key as written (`list`: in [ ]) have
// that kind, else why not.
std::string WrongKind(ConfigKeyKind kind, bool list, const std::vector<ScannedValue>& values) {
  if (list && kind != ConfigKeyKind::kList) return "takes one value, not a list";
  for (const ScannedValue& v : values) {
    switch (kind) {
      case ConfigKeyKind::kFlag:
        if (v.quoted || (v.text != "true" && v.text != "false"))
          return "is a flag: write true or false, unquoted";
        break;
      case ConfigKeyKind::kInteger:
        if (v.quoted || !IsInteger(v.text)) return "takes an integer, unquoted (such as 5000)";
        break;
      default:
        break;
    }
  }
  return "";
}

// Where a carriage return is not followed by a newline (0: nowhere); such
// a line would otherwise hide the lines after it in a comment or a value.
int LoneCarriageReturnLine(std::string_view text) {
  int line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') ++line;
    if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) return line;
  }
  return 0;
}

}  // namespace

Result<std::vector<ConfigSetting>> ParseConfigText(
    std::string_view text, const std::function<ConfigKeyKind(const std::string&)>& kind_of) {
  constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
  if (text.substr(0, kByteOrderMark.size()) == kByteOrderMark) {
    text.remove_prefix(kByteOrderMark.size());
  }
  if (const int line = LoneCarriageReturnLine(text); line != 0) {
    return LineError(line,
                     "a carriage return (\\r) not followed by a newline: save the file with "
                     "\\n or \\r\\n line endings");
  }
  std::vector<ConfigSetting> out;
  std::map<std::string, int> first_line;  // key -> line where it was set
  ConfigScanner in(text);
  while (!in.AtEnd()) {
    if (in.EndOfLine()) continue;  // blank or comment
    const int line = in.line();
    if (in.Peek() == '[') {
      return LineError(line, "section header '" + Shown(in.RestOfLine()) +
                                 "': treatyd's configuration has no sections; write every "
                                 "`key = value` at the top level" +
                                 kKeysAre);
    }
    const std::string key(in.Key());
    if (key.empty()) {
      if (in.RestOfLine().substr(0, 3) == "\xEF\xBB\xBF") {
        return LineError(line,
                         "a byte order mark (U+FEFF) is allowed only at the start of the file");
      }
      return LineError(line, "expected `key = value`, found '" + Shown(in.RestOfLine()) + "'");
    }
    const std::string shown = Shown(key);  // the key as quoted in messages
    const ConfigKeyKind kind = kind_of(key);
    switch (kind) {
      case ConfigKeyKind::kUnknown:
        return LineError(line, "unknown key '" + shown + "'" + kKeysAre);
      case ConfigKeyKind::kNotInFile:
        return LineError(line, "'" + shown + "' is an option of the command line only");
      default:
        break;
    }
    if (auto [it, fresh] = first_line.emplace(key, line); !fresh) {
      return LineError(
          line, "'" + shown + "' is set again (first on line " + std::to_string(it->second) + ")");
    }
    ConfigSetting setting{key, {}, line};
    if (in.EndOfLine()) {
      if (kind != ConfigKeyKind::kFlag) {
        return LineError(line, "'" + shown + "' needs a value: `" + shown + " = VALUE`");
      }
      setting.values.push_back("true");  // a bare flag
      out.push_back(std::move(setting));
      continue;
    }
    if (in.Peek() != '=') {
      return LineError(
          line, "expected '=' after '" + shown + "', found '" + Shown(in.RestOfLine()) + "'");
    }
    in.Advance();
    in.SkipBlanks();
    if (in.AtEnd() || in.Peek() == '\n' || in.Peek() == '#') {
      return LineError(line, "'" + shown + "' = nothing: give a value (\"\" for empty text)");
    }
    std::vector<ScannedValue> values;
    // Each value as it is read: it parses and holds no control character.
    const auto take = [&](std::string_view stops) -> Status {
      Result<ScannedValue> v = in.Value(stops);
      if (!v.ok())
        return LineError(in.line(), "the value of '" + shown + "': " + v.status().message());
      if (std::string c = ControlCharIn(v->text); !c.empty()) {
        return LineError(in.line(), "the value of '" + shown + "' holds the control character " +
                                        c + " (only tab is allowed)");
      }
      values.push_back(std::move(*v));
      return Status::Ok();
    };
    const bool list = in.Peek() == '[';
    if (list) {
      in.Advance();
      while (true) {
        in.SkipSpace();
        if (in.AtEnd()) return LineError(line, "the list of '" + shown + "' is not closed with ]");
        if (in.Peek() == ']') break;
        if (in.Peek() == ',')
          return LineError(in.line(), "a value is missing in the list of '" + shown + "'");
        if (Status s = take(",]"); !s.ok()) return s;
        in.SkipSpace();
        if (in.AtEnd()) return LineError(line, "the list of '" + shown + "' is not closed with ]");
        if (in.Peek() == ',') {
          in.Advance();
        } else if (in.Peek() != ']') {
          return LineError(in.line(), "expected ',' or ']' in the list of '" + shown + "'");
        }
      }
      in.Advance();  // ']'
      if (values.empty()) {
        return LineError(line,
                         "the list of '" + shown + "' is empty; leave the key out for its default");
      }
    } else {
      if (Status s = take(""); !s.ok()) return s;
    }
    if (std::string why = WrongKind(kind, list, values); !why.empty()) {
      return LineError(line, "'" + shown + "' " + why);
    }
    if (!in.EndOfLine()) {
      return LineError(in.line(), "unexpected text after the value of '" + shown + "': '" +
                                      Shown(in.RestOfLine()) + "'");
    }
    for (ScannedValue& v : values) setting.values.push_back(std::move(v.text));
    out.push_back(std::move(setting));
  }
  return out;
}

}  // namespace treaty
