// saga_bench: throughput and latency of three-step sagas through one
// in-process coordinator (TxnService + LogWriter + LogStore + pooled HTTP
// caller) against an in-process participant that answers 200 at once.
// Measures the engine, the log and the participant path; not the REST
// front end. Run by hand (not a test):
//
//   saga_bench --store sqlite:/tmp/bench.db --sagas 20000 --in-flight 1000
//   saga_bench --store postgresql://postgres@127.0.0.1:5432/bench
//
// Prints sagas/s and completion latency percentiles.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>

#include "api/server.h"
#include "http/http_server.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"saga_bench: three-step saga throughput"};
  std::string store = "sqlite:/tmp/treaty-bench/bench.db";
  int sagas = 20000, in_flight = 1000, steps = 3, io_threads = 2;
  app.add_option("--store", store)->capture_default_str();
  app.add_option("--sagas", sagas)->capture_default_str();
  app.add_option("--in-flight", in_flight, "Sagas kept in flight at once")->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--io-threads", io_threads)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  // The participant: answers 200 to everything, on its own thread.
  boost::asio::io_context pio;
  treaty::HttpServer participant(pio, {}, [](treaty::HttpRequest, treaty::HttpResponder r) {
    treaty::HttpResponse resp;
    resp.body = "{}";
    r(std::move(resp));
  });
  if (auto s = participant.Start(); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  std::thread pthread([&] { pio.run(); });
  const std::string base = "http://127.0.0.1:" + std::to_string(participant.port());

  treaty::ServerOptions opts;
  opts.store_uri = store;
  opts.http_port = 0;
  opts.io_threads = io_threads;
  treaty::Server server(opts);
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << "cannot start: " << s.ToString() << "\n";
    return 1;
  }

  treaty::SagaSpec proto;
  for (int i = 0; i < steps; ++i) {
    treaty::SagaStep st;
    st.name = "s" + std::to_string(i);
    st.action = base + "/" + st.name + "/action";
    st.compensate = base + "/" + st.name + "/compensate";
    st.payload = R"({"amount":10})";
    proto.steps.push_back(st);
  }

  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> latencies_us;
  latencies_us.reserve(sagas);
  std::atomic<int> next{0}, done{0}, failed{0};
  const std::string run = std::to_string(Clock::now().time_since_epoch().count() % 1000000);
  std::function<void()> submit_one = [&] {
    const int i = next++;
    if (i >= sagas) return;
    treaty::SagaSpec spec = proto;
    spec.gtid = "bench-" + run + "-" + std::to_string(i);
    auto start = Clock::now();
    server.service()->SubmitSaga(
        std::move(spec), true, 60000, [&, start](treaty::Result<treaty::SubmitResult> r) {
          if (!r.ok() || r->state != "COMMITTED") ++failed;
          auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
          {
            std::lock_guard<std::mutex> l(mu);
            latencies_us.push_back(us.count());
          }
          if (++done == sagas) cv.notify_all();
          submit_one();
        });
  };
  auto t0 = Clock::now();
  for (int i = 0; i < std::min(in_flight, sagas); ++i) submit_one();
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done.load() == sagas; });
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double p) {
    return latencies_us[static_cast<size_t>(p * (latencies_us.size() - 1))] / 1000.0;
  };
  std::cout << "store=" << store.substr(0, store.find(':')) << " sagas=" << sagas
            << " steps=" << steps << " in_flight=" << in_flight << " failed=" << failed
            << "\nthroughput: " << static_cast<int>(sagas / secs) << " sagas/s (" << secs
            << " s)\nlatency ms: p50=" << pct(0.5) << " p90=" << pct(0.9) << " p99=" << pct(0.99)
            << " max=" << pct(1.0) << "\n";
  server.Stop();
  participant.Stop();
  pio.stop();
  pthread.join();
  return failed > 0 ? 1 : 0;
}
