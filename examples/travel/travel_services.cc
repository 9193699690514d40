// travel_services: three example participants — flight, hotel and car
// rental — each with its own SQLite database, serving Treaty's participant
// protocol over HTTP on one port:
//   POST /{flight,hotel,car}/book     (saga action)
//   POST /{flight,hotel,car}/cancel   (saga compensation)
// Each service applies an op at most once per Idempotency-Key, treats a
// cancel of a booking it never made as a successful no-op, and refuses a
// booking that arrives after its cancellation. The car service answers 409
// (business failure: "no cars left") when the payload asks for "class":"none".
//
// Usage: travel_services --port 7500 --data ./travel-data

#include <signal.h>
#include <sqlite3.h>

#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "http/http_server.h"

namespace {

using nlohmann::json;
using treaty::HttpRequest;
using treaty::HttpResponse;

// One service's bookings in its own SQLite file. Thread-safe (mutex).
class BookingDb {
 public:
  BookingDb(const std::string& path) {
    sqlite3_open(path.c_str(), &db_);
    Exec("PRAGMA journal_mode=WAL");
    Exec(
        "CREATE TABLE IF NOT EXISTS bookings(gtid TEXT PRIMARY KEY, detail TEXT, state TEXT)");
    Exec("CREATE TABLE IF NOT EXISTS applied(key TEXT PRIMARY KEY)");
  }
  ~BookingDb() { sqlite3_close(db_); }

  // Applies `op` once per idempotency key. Returns the HTTP status.
  int Apply(const std::string& key, const std::string& gtid, const std::string& op,
            const std::string& detail, std::string* message) {
    std::lock_guard<std::mutex> l(mu_);
    Exec("BEGIN IMMEDIATE");
    if (Count("SELECT count(*) FROM applied WHERE key=?", key) > 0) {
      Exec("COMMIT");
      *message = "duplicate delivery, already applied";
      return 200;
    }
    std::string state = State(gtid);
    int status = 200;
    if (op == "book") {
      if (state == "cancelled") {
        *message = "refused: this booking was already cancelled";
        status = 409;
      } else {
        Run("INSERT OR REPLACE INTO bookings VALUES(?, ?, 'booked')", gtid, detail);
        *message = "booked " + detail;
      }
    } else {
      // A cancel with no booking is a no-op that still blocks a late booking.
      Run("INSERT OR REPLACE INTO bookings VALUES(?, ?, 'cancelled')", gtid,
          state.empty() ? "(never booked)" : detail);
      *message = state == "booked" ? "cancelled" : "nothing to cancel";
    }
    if (status == 200) Run("INSERT INTO applied VALUES(?, '')", key, "");
    Exec("COMMIT");
    return status;
  }

 private:
  void Exec(const char* sql) { sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }
  void Run(const char* sql, const std::string& a, const std::string& b) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, sql, -1, &st, nullptr);
    sqlite3_bind_text(st, 1, a.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_bind_parameter_count(st) > 1) sqlite3_bind_text(st, 2, b.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  int Count(const char* sql, const std::string& a) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, sql, -1, &st, nullptr);
    sqlite3_bind_text(st, 1, a.c_str(), -1, SQLITE_TRANSIENT);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return n;
  }
  std::string State(const std::string& gtid) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, "SELECT state FROM bookings WHERE gtid=?", -1, &st, nullptr);
    sqlite3_bind_text(st, 1, gtid.c_str(), -1, SQLITE_TRANSIENT);
    std::string s;
    if (sqlite3_step(st) == SQLITE_ROW) s = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return s;
  }

  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

HttpResponse Reply(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = json({{"message", message}}).dump();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"travel_services: flight, hotel and car example participants"};
  int port = 7500;
  std::string data = "./travel-data";
  app.add_option("--port", port, "HTTP port on 127.0.0.1")->capture_default_str();
  app.add_option("--data", data, "Folder for the services' SQLite files")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::filesystem::create_directories(data);

  std::map<std::string, std::unique_ptr<BookingDb>> dbs;
  for (const char* svc : {"flight", "hotel", "car"}) {
    dbs[svc] = std::make_unique<BookingDb>(data + "/" + svc + ".db");
  }

  boost::asio::io_context io;
  treaty::HttpServerOptions opts;
  opts.port = static_cast<uint16_t>(port);
  treaty::HttpServer server(io, opts, [&](HttpRequest req, treaty::HttpResponder respond) {
    // Path: /{service}/{book|cancel}
    auto slash = req.path.find('/', 1);
    std::string svc = req.path.substr(1, slash == std::string::npos ? 0 : slash - 1);
    std::string op = slash == std::string::npos ? "" : req.path.substr(slash + 1);
    if (!dbs.count(svc) || (op != "book" && op != "cancel") || req.method != "POST") {
      respond(Reply(404, "no such endpoint"));
      return;
    }
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.contains("gtid")) {
      respond(Reply(400, "expected Treaty's JSON body"));
      return;
    }
    const std::string gtid = body["gtid"].get<std::string>();
    const json payload = body.value("payload", json());
    if (svc == "car" && op == "book" && payload.is_object() &&
        payload.value("class", "") == "none") {
      std::cout << "[car]    " << gtid << ": no cars left, refusing (409)" << std::endl;
      respond(Reply(409, "no cars left"));
      return;
    }
    std::string message;
    int status = dbs[svc]->Apply(req.Header("idempotency-key"), gtid, op, payload.dump(),
                                 &message);
    std::cout << "[" << svc << "]" << std::string(7 - svc.size(), ' ') << gtid << ": " << op
              << " -> " << message << std::endl;
    respond(Reply(status, message));
  });
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << "travel_services: " << s.ToString() << "\n";
    return 1;
  }
  std::cout << "travel services on http://127.0.0.1:" << server.port()
            << " (flight, hotel, car)" << std::endl;
  std::thread t([&] { io.run(); });
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int sig = 0;
  sigwait(&signals, &sig);
  server.Stop();
  io.stop();
  t.join();
  return 0;
}
