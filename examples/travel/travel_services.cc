// travel_services: three example participants — flight, hotel and car
// rental — built on the Treaty participant SDK, serving the participant
// protocol over HTTP on one port:
//   POST /{flight,hotel,car}/book     (saga action; any path under the name works)
//   POST /{flight,hotel,car}/cancel   (saga compensation)
// State lives in one SQLite file per service (--data), or in PostgreSQL
// (--pg), where the SDK's Barrier makes every op exactly-once. Either way a
// duplicate delivery is a no-op, a cancel of a booking never made is a
// successful no-op, and a booking arriving after its cancellation is
// refused. The car service fails the step on business grounds (409, "no
// cars left") when the payload asks for "class":"none".
//
// Usage: travel_services --port 7500 --data ./travel-data
//        travel_services --port 7500 --pg postgresql://user@host/travel

#include <signal.h>
#include <sqlite3.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "treaty/barrier.h"
#include "treaty/participant_server.h"

namespace {

using nlohmann::json;

// Where a service keeps its bookings. Apply() books (op "action") or
// cancels (op "compensate") at most once per delivery; `message` says what
// happened. Thread-safe.
class BookingStore {
 public:
  virtual ~BookingStore() = default;
  virtual treaty::Status Apply(const treaty::CallContext& ctx, const std::string& detail,
                               std::string* message) = 0;
};

// SQLite: one file per service; the exactly-once rules by hand.
class SqliteBookings : public BookingStore {
 public:
  explicit SqliteBookings(const std::string& path) {
    sqlite3_open(path.c_str(), &db_);
    Exec("PRAGMA journal_mode=WAL");
    Exec("CREATE TABLE IF NOT EXISTS bookings(gtid TEXT PRIMARY KEY, detail TEXT, state TEXT)");
    Exec("CREATE TABLE IF NOT EXISTS applied(key TEXT PRIMARY KEY)");
  }
  ~SqliteBookings() override { sqlite3_close(db_); }

  treaty::Status Apply(const treaty::CallContext& ctx, const std::string& detail,
                       std::string* message) override {
    std::lock_guard<std::mutex> l(mu_);
    Exec("BEGIN IMMEDIATE");
    if (Count("SELECT count(*) FROM applied WHERE key=?", ctx.idempotency_key) > 0) {
      Exec("COMMIT");
      *message = "duplicate delivery, already applied";
      return treaty::Status::Ok();
    }
    const std::string state = State(ctx.gtid);
    if (ctx.op == "action") {
      if (state == "cancelled") {
        Exec("COMMIT");
        *message = "refused: this booking was already cancelled";
        return treaty::Status::BusinessFailure(*message);
      }
      Run("INSERT OR REPLACE INTO bookings VALUES(?, ?, 'booked')", ctx.gtid, detail);
      *message = "booked " + detail;
    } else {
      // A cancel with no booking is a no-op that still blocks a late booking.
      Run("INSERT OR REPLACE INTO bookings VALUES(?, ?, 'cancelled')", ctx.gtid,
          state.empty() ? "(never booked)" : detail);
      *message = state == "booked" ? "cancelled" : "nothing to cancel";
    }
    Run("INSERT INTO applied VALUES(?, ?)", ctx.idempotency_key, "");
    Exec("COMMIT");
    return treaty::Status::Ok();
  }

 private:
  void Exec(const char* sql) { sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }
  void Run(const char* sql, const std::string& a, const std::string& b) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, sql, -1, &st, nullptr);
    sqlite3_bind_text(st, 1, a.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_bind_parameter_count(st) > 1)
      sqlite3_bind_text(st, 2, b.c_str(), -1, SQLITE_TRANSIENT);
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
    if (sqlite3_step(st) == SQLITE_ROW)
      s = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return s;
  }

  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

// PostgreSQL: the SDK's Barrier does the exactly-once part.
class PgBookings : public BookingStore {
 public:
  PgBookings(treaty::Barrier* barrier, std::string service)
      : barrier_(barrier), service_(std::move(service)) {}

  treaty::Status Apply(const treaty::CallContext& ctx, const std::string& detail,
                       std::string* message) override {
    std::string what;
    auto r = barrier_->Run(ctx, [&](treaty::SqlTx& tx) -> treaty::Status {
      auto q = ctx.op == "action"
                   ? tx.Exec("INSERT INTO travel_bookings VALUES ($1, $2, $3, 'booked')",
                             {service_, ctx.gtid, detail})
                   : tx.Exec(
                         "UPDATE travel_bookings SET state = 'cancelled' "
                         "WHERE service = $1 AND gtid = $2",
                         {service_, ctx.gtid});
      what = ctx.op == "action" ? "booked " + detail : "cancelled";
      return q.status();
    });
    if (!r.ok()) {
      *message = r.status().message();
      return r.status();
    }
    switch (*r) {
      case treaty::BarrierEffect::kApplied:
        *message = what;
        break;
      case treaty::BarrierEffect::kDuplicate:
        *message = "duplicate delivery, already applied";
        break;
      case treaty::BarrierEffect::kNullCompensation:
        *message = "nothing to cancel";
        break;
    }
    return treaty::Status::Ok();
  }

 private:
  treaty::Barrier* barrier_;
  std::string service_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"travel_services: flight, hotel and car example participants"};
  int port = 7500;
  std::string data = "./travel-data", pg;
  app.add_option("--port", port, "HTTP port on 127.0.0.1")->capture_default_str();
  app.add_option("--data", data, "Folder for the services' SQLite files")->capture_default_str();
  app.add_option("--pg", pg, "Keep bookings in this PostgreSQL database instead (Barrier)");
  CLI11_PARSE(app, argc, argv);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<treaty::Barrier> barrier;
  if (!pg.empty()) {
    auto b = treaty::Barrier::Open({.pg_uri = pg});
    if (!b.ok()) {
      std::cerr << "travel_services: " << b.status().ToString() << "\n";
      return 1;
    }
    barrier = std::move(*b);
    auto s = barrier->Run({.gtid = "travel-setup", .branch = "schema", .op = "action"},
                          [](treaty::SqlTx& tx) {
                            return tx
                                .Exec(
                                    "CREATE TABLE IF NOT EXISTS travel_bookings(service text, gtid "
                                    "text, detail text, state text, PRIMARY KEY (service, gtid))")
                                .status();
                          });
    if (!s.ok()) {
      std::cerr << "travel_services: " << s.status().ToString() << "\n";
      return 1;
    }
  } else {
    std::filesystem::create_directories(data);
  }

  treaty::ParticipantServer server({.http_port = static_cast<uint16_t>(port)});
  std::map<std::string, std::unique_ptr<BookingStore>> stores;
  std::mutex print_mu;
  for (const std::string svc : {"flight", "hotel", "car"}) {
    if (barrier) {
      stores[svc] = std::make_unique<PgBookings>(barrier.get(), svc);
    } else {
      stores[svc] = std::make_unique<SqliteBookings>(data + "/" + svc + ".db");
    }
    BookingStore* store = stores[svc].get();
    auto handler = [svc, store, &print_mu](const treaty::CallContext& ctx) {
      const std::string op = ctx.op == "action" ? "book" : "cancel";
      json payload = json::parse(ctx.payload, nullptr, false);
      std::string message;
      treaty::Status s;
      if (svc == "car" && op == "book" && payload.is_object() &&
          payload.value("class", "") == "none") {
        message = "no cars left, refusing (409)";
        s = treaty::Status::BusinessFailure("no cars left");
      } else {
        s = store->Apply(ctx, payload.dump(), &message);
      }
      std::lock_guard<std::mutex> l(print_mu);
      std::cout << "[" << svc << "]" << std::string(7 - svc.size(), ' ') << ctx.gtid << ": "
                << (s.code() == treaty::StatusCode::kBusinessFailure && op == "book" &&
                            svc == "car" && message.rfind("no cars", 0) == 0
                        ? message
                        : op + " -> " + message)
                << std::endl;
      return s;
    };
    server.AddSagaStep(svc, handler, handler);
  }
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << "travel_services: " << s.ToString() << "\n";
    return 1;
  }
  std::cout << "travel services on " << server.http_url() << " (flight, hotel, car)" << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  server.Stop();
  return 0;
}
