#include "support/test_pki.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "support/subprocess.h"

namespace treaty::testing {
namespace {

// Runs `command` through the shell in `dir`; Internal with its output on failure.
Status Run(const std::string& dir, const std::string& command) {
  const std::string full = "cd '" + dir + "' && ( " + command + " ) >openssl.log 2>&1";
  if (std::system(full.c_str()) == 0) return Status::Ok();
  std::ifstream log(dir + "/openssl.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  return Status::Internal("openssl failed: " + command + ": " + text);
}

// ASN.1 GeneralizedTime of now + `offset_s`.
std::string AsnTime(long offset_s) {
  std::time_t t = std::time(nullptr) + offset_s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d%H%M%SZ", &tm);
  return buf;
}

constexpr const char* kCaConfig = R"([ca]
default_ca = test
[test]
dir = .
database = db/index.txt
serial = db/serial
new_certs_dir = db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[any]
commonName = supplied
[leaf]
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
)";

}  // namespace

Result<TestPki> TestPki::Create(const std::string& ca_name) {
  std::string dir = MakeTempDir("treaty-pki");
  {
    std::ofstream cnf(dir + "/ca.cnf");
    cnf << kCaConfig;
  }
  if (auto s = Run(dir, "mkdir -p db && touch db/index.txt"); !s.ok()) return s;
  {
    // Not through Run: its own redirection of stdout would swallow an echo.
    std::ofstream serial(dir + "/db/serial");
    serial << "01\n";
  }
  if (auto s = Run(dir,
                   "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                   "-keyout ca.key -out ca.pem -days 3650 -subj '/CN=" +
                       ca_name +
                       "' -addext 'basicConstraints=critical,CA:TRUE' "
                       "-addext 'keyUsage=critical,keyCertSign,cRLSign'");
      !s.ok()) {
    return s;
  }
  return TestPki(dir, dir + "/ca.pem");
}

Result<CertFiles> TestPki::Issue(const std::string& common_name, const std::string& file_stem,
                                 bool expired, int valid_days) {
  CertFiles files{dir_ + "/" + file_stem + ".pem", dir_ + "/" + file_stem + ".key"};
  const std::string start = expired ? "20200101000000Z" : AsnTime(-3600);
  const std::string end = expired ? "20200102000000Z" : AsnTime(long{valid_days} * 86400);
  if (auto s = Run(
          dir_, "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout '" +
                    files.key + "' -out '" + file_stem + ".csr' -subj '/CN=" + common_name +
                    "' && openssl ca -batch -notext -config ca.cnf -startdate " + start +
                    " -enddate " + end + " -in '" + file_stem + ".csr' -out '" + files.cert + "'");
      !s.ok()) {
    return s;
  }
  return files;
}

}  // namespace treaty::testing
